"""Knowledge bases: the user's own documents, indexed for Chinese, searched for a chat's answer.

extract (text out of TXT/Markdown/PDF/DOCX/HTML, honestly) -> chunking (sentence ends, overlap, pages) ->
segment (how Chinese goes into SQLite FTS5) -> index (`KnowledgeBase`: files, chunks, search) -> sources (the
retrieved chunks in the user's turn, numbered). No Qt, no torch.
"""
