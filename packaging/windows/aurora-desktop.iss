; Inno Setup script for Aurora Desktop on Windows (x64). Built by .github/workflows/installers.yml:
;   pyinstaller packaging\aurora-desktop.spec   ->  dist\aurora-desktop\ (onedir, with cpu-variants\)
;   iscc /DVersion=0.1.0 /DSource=dist\aurora-desktop packaging\windows\aurora-desktop.iss
#ifndef Version
  #define Version "0.1.0"
#endif
#ifndef Source
  #define Source "..\..\dist\aurora-desktop"
#endif

[Setup]
AppId={{6F2B4C1E-9A3D-4E5F-8B7A-1C2D3E4F5A6B}
AppName=Aurora Desktop
AppVersion={#Version}
AppPublisher=Aurora Desktop developers
DefaultDirName={autopf}\Aurora Desktop
DefaultGroupName=Aurora Desktop
OutputBaseFilename=aurora-desktop-{#Version}-windows-x64-setup
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
Compression=lzma2/max
SolidCompression=yes
PrivilegesRequired=lowest
WizardStyle=modern

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"
Name: "chinesesimplified"; MessagesFile: "compiler:Languages\ChineseSimplified.isl"

[Files]
Source: "{#Source}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\Aurora Desktop"; Filename: "{app}\aurora-desktop.exe"; Parameters: ""
Name: "{autodesktop}\Aurora Desktop"; Filename: "{app}\aurora-desktop.exe"; Tasks: desktopicon

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"

[Run]
Filename: "{app}\aurora-desktop.exe"; Description: "{cm:LaunchProgram,Aurora Desktop}"; Flags: nowait postinstall skipifsilent
