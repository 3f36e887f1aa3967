<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE TS>
<TS version="2.1" language="zh_CN">
<context>
    <name>Aurora</name>
    <message>
        <source>Copy code</source>
        <translation>复制代码</translation>
    </message>
    <message>
        <source>Message text</source>
        <translation>消息内容</translation>
    </message>
    <message>
        <source>You</source>
        <translation>你</translation>
    </message>
    <message>
        <source>Previous version</source>
        <translation>上一个版本</translation>
    </message>
    <message>
        <source>Next version</source>
        <translation>下一个版本</translation>
    </message>
    <message>
        <source>Copy</source>
        <translation>复制</translation>
    </message>
    <message>
        <source>Edit</source>
        <translation>编辑</translation>
    </message>
    <message>
        <source>Regenerate</source>
        <translation>重新生成</translation>
    </message>
    <message>
        <source>interrupted</source>
        <translation>已中断</translation>
    </message>
    <message>
        <source>stopped</source>
        <translation>已停止</translation>
    </message>
    <message>
        <source>error</source>
        <translation>出错</translation>
    </message>
    <message>
        <source>writing…</source>
        <translation>正在写…</translation>
    </message>
    <message>
        <source>Name</source>
        <translation>名称</translation>
    </message>
    <message>
        <source>File</source>
        <translation>文件</translation>
    </message>
    <message>
        <source>Parameters</source>
        <translation>参数量</translation>
    </message>
    <message>
        <source>Experts</source>
        <translation>专家数</translation>
    </message>
    <message>
        <source>Quantization</source>
        <translation>量化</translation>
    </message>
    <message>
        <source>Context length</source>
        <translation>上下文长度</translation>
    </message>
    <message>
        <source>Adapter</source>
        <translation>适配器</translation>
    </message>
    <message>
        <source>LoRA rank</source>
        <translation>LoRA 秩</translation>
    </message>
    <message>
        <source>Training data SHA-256</source>
        <translation>训练数据 SHA-256</translation>
    </message>
    <message>
        <source>Training steps</source>
        <translation>训练步数</translation>
    </message>
    <message>
        <source>Open model</source>
        <translation>打开模型</translation>
    </message>
    <message>
        <source>Load</source>
        <translation>加载</translation>
    </message>
    <message>
        <source>Chat settings</source>
        <translation>对话设置</translation>
    </message>
    <message>
        <source>e.g. You are a helpful assistant. Answer in Chinese.</source>
        <translation>例如：你是一个乐于助人的助手，请用中文回答。</translation>
    </message>
    <message>
        <source>From the folder: {prompt}</source>
        <translation>沿用文件夹的：{prompt}</translation>
    </message>
    <message>
        <source>Drop the oldest turns (never the system prompt)</source>
        <translation>丢弃最早的轮次（保留系统提示）</translation>
    </message>
    <message>
        <source>Stop at the limit</source>
        <translation>到达上限时停止</translation>
    </message>
    <message>
        <source>Datasets</source>
        <translation>数据集</translation>
    </message>
    <message>
        <source>Context size</source>
        <translation>上下文大小</translation>
    </message>
    <message>
        <source>KV cache type</source>
        <translation>KV 缓存类型</translation>
    </message>
    <message>
        <source>Threads</source>
        <translation>线程数</translation>
    </message>
    <message>
        <source>GPU layers</source>
        <translation>GPU 层数</translation>
    </message>
    <message>
        <source>Flash attention</source>
        <translation>Flash Attention</translation>
    </message>
    <message>
        <source>System prompt</source>
        <translation>系统提示</translation>
    </message>
    <message>
        <source>Temperature</source>
        <translation>温度</translation>
    </message>
    <message>
        <source>Top-p</source>
        <translation>Top-p</translation>
    </message>
    <message>
        <source>Max answer tokens</source>
        <translation>回答最多 token 数</translation>
    </message>
    <message>
        <source>When the context is full</source>
        <translation>上下文满时</translation>
    </message>
    <message>
        <source>Loading needs about {need:.2f} GiB (weights {w:.2f} + KV cache {kv:.2f}); {have:.1f} GiB is free.</source>
        <translation>加载约需 {need:.2f} GiB（权重 {w:.2f} + KV 缓存 {kv:.2f}）；可用内存 {have:.1f} GiB。</translation>
    </message>
    <message>
        <source>New chat</source>
        <translation>新对话</translation>
    </message>
    <message>
        <source>Search all chats…</source>
        <translation>搜索所有对话…</translation>
    </message>
    <message>
        <source>Search all chats</source>
        <translation>搜索所有对话</translation>
    </message>
    <message>
        <source>Conversations</source>
        <translation>对话列表</translation>
    </message>
    <message>
        <source>Message</source>
        <translation>消息</translation>
    </message>
    <message>
        <source>Send</source>
        <translation>发送</translation>
    </message>
    <message>
        <source>Stop</source>
        <translation>停止</translation>
    </message>
    <message>
        <source>Undo delete</source>
        <translation>撤销删除</translation>
    </message>
    <message>
        <source>Open model…</source>
        <translation>打开模型…</translation>
    </message>
    <message>
        <source>Search</source>
        <translation>搜索</translation>
    </message>
    <message>
        <source>Export chat as Markdown…</source>
        <translation>导出对话为 Markdown…</translation>
    </message>
    <message>
        <source>Export chat as JSON…</source>
        <translation>导出对话为 JSON…</translation>
    </message>
    <message>
        <source>Export all chats as JSON…</source>
        <translation>导出全部对话为 JSON…</translation>
    </message>
    <message>
        <source>Import JSON…</source>
        <translation>导入 JSON…</translation>
    </message>
    <message>
        <source>Chat settings…</source>
        <translation>对话设置…</translation>
    </message>
    <message>
        <source>Quit</source>
        <translation>退出</translation>
    </message>
    <message>
        <source>Enter sends</source>
        <translation>回车发送</translation>
    </message>
    <message>
        <source>Ctrl+Enter sends</source>
        <translation>Ctrl+回车发送</translation>
    </message>
    <message>
        <source>&amp;File</source>
        <translation>文件(&amp;F)</translation>
    </message>
    <message>
        <source>&amp;Chat</source>
        <translation>对话(&amp;C)</translation>
    </message>
    <message>
        <source>&amp;View</source>
        <translation>视图(&amp;V)</translation>
    </message>
    <message>
        <source>Rename…</source>
        <translation>重命名…</translation>
    </message>
    <message>
        <source>Delete</source>
        <translation>删除</translation>
    </message>
    <message>
        <source>Chat deleted.</source>
        <translation>对话已删除。</translation>
    </message>
    <message>
        <source>GGUF models (*.gguf)</source>
        <translation>GGUF 模型 (*.gguf)</translation>
    </message>
    <message>
        <source>Model loaded.</source>
        <translation>模型已加载。</translation>
    </message>
    <message>
        <source>Cannot open this model</source>
        <translation>无法打开此模型</translation>
    </message>
    <message>
        <source>The answer failed</source>
        <translation>回答失败</translation>
    </message>
    <message>
        <source>Export chat</source>
        <translation>导出对话</translation>
    </message>
    <message>
        <source>Export all chats</source>
        <translation>导出全部对话</translation>
    </message>
    <message>
        <source>Type a message. Enter sends, Shift+Enter starts a new line.</source>
        <translation>输入消息。回车发送，Shift+回车换行。</translation>
    </message>
    <message>
        <source>Type a message. Ctrl+Enter sends, Enter starts a new line.</source>
        <translation>输入消息。Ctrl+回车发送，回车换行。</translation>
    </message>
    <message>
        <source>Rename</source>
        <translation>重命名</translation>
    </message>
    <message>
        <source>Title:</source>
        <translation>标题：</translation>
    </message>
    <message>
        <source>Loading cancelled.</source>
        <translation>已取消加载。</translation>
    </message>
    <message>
        <source>No model</source>
        <translation>未加载模型</translation>
    </message>
    <message>
        <source>Open a GGUF model first (File → Open model…).</source>
        <translation>请先打开一个 GGUF 模型（文件 → 打开模型…）。</translation>
    </message>
    <message>
        <source>Edit message</source>
        <translation>编辑消息</translation>
    </message>
    <message>
        <source>Message:</source>
        <translation>消息：</translation>
    </message>
    <message>
        <source>Import JSON</source>
        <translation>导入 JSON</translation>
    </message>
    <message>
        <source>JSON (*.json)</source>
        <translation>JSON (*.json)</translation>
    </message>
    <message>
        <source>context {used:,} / {n_ctx:,}</source>
        <translation>上下文 {used:,} / {n_ctx:,}</translation>
    </message>
    <message>
        <source>Export failed</source>
        <translation>导出失败</translation>
    </message>
    <message>
        <source>Saved {path}</source>
        <translation>已保存 {path}</translation>
    </message>
    <message>
        <source>Import failed</source>
        <translation>导入失败</translation>
    </message>
    <message>
        <source>The chat outgrew the context: the oldest {n} messages were left out of what the model sees (the system prompt was kept).</source>
        <translation>对话超出了上下文：最早的 {n} 条消息不再提供给模型（系统提示已保留）。</translation>
    </message>
    <message>
        <source>{speed:.1f} tokens/s</source>
        <translation>{speed:.1f} token/秒</translation>
    </message>
    <message>
        <source>Could not save: {error}</source>
        <translation>无法保存：{error}</translation>
    </message>
    <message>
        <source>Recent models</source>
        <translation>最近的模型</translation>
    </message>
    <message>
        <source>(none yet)</source>
        <translation>（暂无）</translation>
    </message>
    <message>
        <source>Loading {name}… (Esc cancels)</source>
        <translation>正在加载 {name}…（按 Esc 取消）</translation>
    </message>
    <message>
        <source>llama.cpp build</source>
        <translation>llama.cpp 构建</translation>
    </message>
    <message>
        <source>Close model</source>
        <translation>关闭模型</translation>
    </message>
    <message>
        <source>Offline Chinese chat with a Mixtral model on your own computer. Nothing you type leaves it.</source>
        <translation>在你自己的电脑上用 Mixtral 模型离线进行中文对话。你输入的内容不会离开这台电脑。</translation>
    </message>
    <message>
        <source>Open a model file…</source>
        <translation>打开模型文件…</translation>
    </message>
    <message>
        <source>or drop a .gguf file on this window</source>
        <translation>或者把 .gguf 文件拖到这个窗口里</translation>
    </message>
    <message>
        <source>Which model file fits this computer</source>
        <translation>哪个模型文件适合这台电脑</translation>
    </message>
    <message>
        <source>Where the model files come from</source>
        <translation>模型文件从哪里来</translation>
    </message>
    <message>
        <source>Aurora's files are written by “aurora-export gguf” from Mixtral-8x7B-Instruct and the Aurora adapter (README, “With the real model”). Any Mixtral or Llama GGUF opens too.</source>
        <translation>Aurora 的模型文件由 “aurora-export gguf” 从 Mixtral-8x7B-Instruct 和 Aurora 适配器生成（见 README 的 “With the real model” 一节）。任何 Mixtral 或 Llama 的 GGUF 文件也都可以打开。</translation>
    </message>
    <message>
        <source>This computer has {total:.0f} GB of memory ({free:.0f} GB free now). For Mixtral-8x7B at a context of {n_ctx:,} tokens:</source>
        <translation>这台电脑有 {total:.0f} GB 内存（当前可用 {free:.0f} GB）。Mixtral-8x7B 在 {n_ctx:,} 个 token 的上下文下：</translation>
    </message>
    <message>
        <source>no file fits; a smaller model or another computer is needed.</source>
        <translation>没有放得下的文件；需要更小的模型或另一台电脑。</translation>
    </message>
    <message>
        <source>Type</source>
        <translation>类型</translation>
    </message>
    <message>
        <source>Needs</source>
        <translation>需要内存</translation>
    </message>
    <message>
        <source>Quality</source>
        <translation>质量</translation>
    </message>
    <message>
        <source>recommended</source>
        <translation>推荐</translation>
    </message>
    <message>
        <source>fits</source>
        <translation>可以运行</translation>
    </message>
    <message>
        <source>too large</source>
        <translation>放不下</translation>
    </message>
    <message>
        <source>practically lossless</source>
        <translation>几乎无损</translation>
    </message>
    <message>
        <source>nearly lossless</source>
        <translation>接近无损</translation>
    </message>
    <message>
        <source>very small loss</source>
        <translation>损失很小</translation>
    </message>
    <message>
        <source>small loss; the usual choice</source>
        <translation>损失小；最常用的选择</translation>
    </message>
    <message>
        <source>clear loss</source>
        <translation>损失明显</translation>
    </message>
    <message>
        <source>large loss; only if nothing else fits</source>
        <translation>损失大；仅在别无选择时使用</translation>
    </message>
    <message>
        <source>All chats</source>
        <translation>全部对话</translation>
    </message>
    <message>
        <source>Delete all chats</source>
        <translation>删除全部对话</translation>
    </message>
    <message>
        <source>Delete all chats…</source>
        <translation>删除全部对话…</translation>
    </message>
    <message>
        <source>Delete every chat and folder for good? This cannot be undone.</source>
        <translation>永久删除所有对话和文件夹？此操作无法撤销。</translation>
    </message>
    <message>
        <source>Delete folder</source>
        <translation>删除文件夹</translation>
    </message>
    <message>
        <source>Delete folder…</source>
        <translation>删除文件夹…</translation>
    </message>
    <message>
        <source>Delete the chats too</source>
        <translation>连同对话一起删除</translation>
    </message>
    <message>
        <source>Delete the folder “{name}”. What happens to its chats?</source>
        <translation>删除文件夹“{name}”。其中的对话如何处理？</translation>
    </message>
    <message>
        <source>Export this folder as JSON…</source>
        <translation>将此文件夹导出为 JSON…</translation>
    </message>
    <message>
        <source>Folder settings</source>
        <translation>文件夹设置</translation>
    </message>
    <message>
        <source>Folder settings…</source>
        <translation>文件夹设置…</translation>
    </message>
    <message>
        <source>Folders</source>
        <translation>文件夹</translation>
    </message>
    <message>
        <source>Importing {path}…</source>
        <translation>正在导入 {path}…</translation>
    </message>
    <message>
        <source>Keep the chats</source>
        <translation>保留对话</translation>
    </message>
    <message>
        <source>Move to folder</source>
        <translation>移动到文件夹</translation>
    </message>
    <message>
        <source>Name:</source>
        <translation>名称：</translation>
    </message>
    <message>
        <source>New folder</source>
        <translation>新建文件夹</translation>
    </message>
    <message>
        <source>New folder…</source>
        <translation>新建文件夹…</translation>
    </message>
    <message>
        <source>No folder</source>
        <translation>未归档</translation>
    </message>
    <message>
        <source>Long chats</source>
        <translation>长对话</translation>
    </message>
    <message>
        <source>shift the KV cache (seamless); off: read the kept turns again (exact)</source>
        <translation>平移 KV 缓存（无缝）；关闭：重新读取保留的轮次（精确）</translation>
    </message>
    <message>
        <source>API key</source>
        <translation>API 密钥</translation>
    </message>
    <message>
        <source>Address</source>
        <translation>地址</translation>
    </message>
    <message>
        <source>Model</source>
        <translation>模型</translation>
    </message>
    <message>
        <source>Connect</source>
        <translation>连接</translation>
    </message>
    <message>
        <source>none</source>
        <translation>无</translation>
    </message>
    <message>
        <source>the first the server lists</source>
        <translation>服务器列出的第一个</translation>
    </message>
    <message>
        <source>Use a model on a server</source>
        <translation>使用服务器上的模型</translation>
    </message>
    <message>
        <source>Use a model on a server…</source>
        <translation>使用服务器上的模型…</translation>
    </message>
    <message>
        <source>Serve to other programs</source>
        <translation>为其他程序提供服务</translation>
    </message>
    <message>
        <source>Cannot serve</source>
        <translation>无法提供服务</translation>
    </message>
    <message>
        <source>Serving to other programs at {url}</source>
        <translation>正在为其他程序提供服务：{url}</translation>
    </message>
    <message>
        <source>Programs send the API key with each request; it is kept in {path}</source>
        <translation>其他程序每次请求都要带上 API 密钥；密钥保存在 {path}</translation>
    </message>
    <message>
        <source>Copy key</source>
        <translation>复制密钥</translation>
    </message>
    <message>
        <source>Copy the API key that programs send with each request</source>
        <translation>复制其他程序每次请求时要带上的 API 密钥</translation>
    </message>
    <message>
        <source>Copied</source>
        <translation>已复制</translation>
    </message>
    <message>
        <source>Remote: {name} — your chats are sent there</source>
        <translation>远程：{name} — 您的对话会发送到那里</translation>
    </message>
    <message>
        <source>Remote: {host}</source>
        <translation>远程：{host}</translation>
    </message>
    <message>
        <source>Connecting to {url}… (Esc cancels)</source>
        <translation>正在连接 {url}…（Esc 取消）</translation>
    </message>
    <message>
        <source>Connected to {url}: your chats are sent there.</source>
        <translation>已连接到 {url}：您的对话会发送到那里。</translation>
    </message>
    <message>
        <source>The key was not saved: {why}</source>
        <translation>密钥未保存：{why}</translation>
    </message>
    <message>
        <source>Chat with a model that runs on another computer, through any OpenAI-compatible server (aurora-serve, llama.cpp's server, vLLM). Every message of a chat you send goes to this address. The key is kept in the system keyring (or a file only you can read), never with the chats.</source>
        <translation>通过任何兼容 OpenAI 的服务器（aurora-serve、llama.cpp 的服务器、vLLM）与另一台计算机上运行的模型对话。您发送的对话中的每条消息都会发到这个地址。密钥保存在系统密钥环中（或只有您能读取的文件中），从不与对话放在一起。</translation>
    </message>
    <message>
        <source>Add files</source>
        <translation>添加文件</translation>
    </message>
    <message>
        <source>Add files…</source>
        <translation>添加文件…</translation>
    </message>
    <message>
        <source>Add folder</source>
        <translation>添加文件夹</translation>
    </message>
    <message>
        <source>Add folder…</source>
        <translation>添加文件夹…</translation>
    </message>
    <message>
        <source>Cancel</source>
        <translation>取消</translation>
    </message>
    <message>
        <source>Cancelled: what was finished is kept.</source>
        <translation>已取消：已完成的部分保留。</translation>
    </message>
    <message>
        <source>Delete knowledge base</source>
        <translation>删除知识库</translation>
    </message>
    <message>
        <source>Delete the knowledge base {name}? Your files stay where they are.</source>
        <translation>删除知识库 {name}？您的文件仍保留在原处。</translation>
    </message>
    <message>
        <source>Delete…</source>
        <translation>删除…</translation>
    </message>
    <message>
        <source>Details</source>
        <translation>详情</translation>
    </message>
    <message>
        <source>Documents (*.txt *.md *.pdf *.docx *.html *.htm)</source>
        <translation>文档 (*.txt *.md *.pdf *.docx *.html *.htm)</translation>
    </message>
    <message>
        <source>Files are read on this computer only. Chinese text files may be UTF-8, UTF-16 or GBK; PDFs need a text layer (a scanned PDF is listed as such).</source>
        <translation>文件只在本机读取。中文文本文件可以是 UTF-8、UTF-16 或 GBK 编码；PDF 需要有文字层（扫描件会被标明）。</translation>
    </message>
    <message>
        <source>Indexed {indexed}, unchanged {unchanged}, skipped {skipped}, failed {failed}.</source>
        <translation>已索引 {indexed} 个，未变 {unchanged} 个，跳过 {skipped} 个，失败 {failed} 个。</translation>
    </message>
    <message>
        <source>Knowledge base</source>
        <translation>知识库</translation>
    </message>
    <message>
        <source>Knowledge bases</source>
        <translation>知识库</translation>
    </message>
    <message>
        <source>Knowledge bases…</source>
        <translation>知识库…</translation>
    </message>
    <message>
        <source>New knowledge base</source>
        <translation>新建知识库</translation>
    </message>
    <message>
        <source>New…</source>
        <translation>新建…</translation>
    </message>
    <message>
        <source>None</source>
        <translation>无</translation>
    </message>
    <message>
        <source>Remove</source>
        <translation>移除</translation>
    </message>
    <message>
        <source>State</source>
        <translation>状态</translation>
    </message>
    <message>
        <source>Update</source>
        <translation>更新</translation>
    </message>
    <message>
        <source>failed</source>
        <translation>失败</translation>
    </message>
    <message>
        <source>indexed</source>
        <translation>已索引</translation>
    </message>
    <message>
        <source>skipped</source>
        <translation>已跳过</translation>
    </message>
    <message>
        <source>{chunks} passages, {chars:,} characters</source>
        <translation>{chunks} 个段落，{chars:,} 个字符</translation>
    </message>
    <message>
        <source>Sources:</source>
        <translation>来源：</translation>
    </message>
    <message>
        <source>p. {page}</source>
        <translation>第 {page} 页</translation>
    </message>
    <message>
        <source>not a supported type</source>
        <translation>不支持的文件类型</translation>
    </message>
    <message>
        <source>too large; split it</source>
        <translation>文件过大，请拆分</translation>
    </message>
    <message>
        <source>too little text</source>
        <translation>文字太少</translation>
    </message>
    <message>
        <source>no text layer (a scanned PDF?)</source>
        <translation>没有文字层（扫描的 PDF？）</translation>
    </message>
    <message>
        <source>damaged text encoding</source>
        <translation>文字编码已损坏</translation>
    </message>
    <message>
        <source>not text; save it as UTF-8</source>
        <translation>不是文本，请另存为 UTF-8</translation>
    </message>
    <message>
        <source>unknown encoding; save it as UTF-8</source>
        <translation>无法识别的编码，请另存为 UTF-8</translation>
    </message>
    <message>
        <source>damaged or oversized DOCX</source>
        <translation>DOCX 已损坏或过大</translation>
    </message>
    <message>
        <source>damaged DOCX</source>
        <translation>DOCX 已损坏</translation>
    </message>
    <message>
        <source>encrypted; save a copy without a password</source>
        <translation>已加密，请另存一份无密码的副本</translation>
    </message>
    <message>
        <source>damaged PDF</source>
        <translation>PDF 已损坏</translation>
    </message>
    <message>
        <source>the reader stopped (a damaged file?)</source>
        <translation>读取中断（文件已损坏？）</translation>
    </message>
</context>
</TS>
