; Inno Setup 6 script for WardLens on Windows (x64). It packages the PyInstaller ONE-FOLDER build
; (dist\WardLens\: WardLens.exe, WardLens-cli.exe, _internal\) made on a Windows build machine with
;   py -3.11 -m venv .venv-build && .venv-build\Scripts\pip install -e ".[package]"
;   .venv-build\Scripts\pyinstaller --noconfirm --distpath dist --workpath build\pyinstaller installer\wardlens.spec
; and then
;   "C:\Program Files (x86)\Inno Setup 6\ISCC.exe" /DAppVersion=0.1.0 installer\wardlens.iss
; which writes dist\WardLens-<version>-windows-x64-setup.exe. See installer\README.md ("Windows").
;
; Install per user by default (no administrator rights; %LOCALAPPDATA%\Programs\WardLens), or for all users
; (Program Files) when started from an elevated prompt / chosen in the dialog. Patient data never lives in the
; program folder: each Windows user's encrypted store is %LOCALAPPDATA%\WardLens\wardlens.db (the
; application's default, services/paths.py; WARDLENS_HOME overrides it). Uninstalling keeps that folder.

#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#define AppName "WardLens"
#define AppExe "WardLens.exe"
#define SrcDir "..\dist\WardLens"
; Optional, for machines without the Microsoft Visual C++ 2015-2022 x64 runtime and without internet:
; put Microsoft's vc_redist.x64.exe in installer\redist\ before compiling and it is installed when needed.
#define VcRedist "redist\vc_redist.x64.exe"

[Setup]
AppId={{6E0B1C52-3F4A-4E55-9C1B-57A7D3E2B9A1}
AppName={#AppName}
AppVersion={#AppVersion}
AppVerName={#AppName} {#AppVersion}
AppPublisher=WardLens
AppComments=Offline clinical risk desk. Opens no network connection.
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog commandline
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
MinVersion=10.0.17763
OutputDir=..\dist
OutputBaseFilename=WardLens-{#AppVersion}-windows-x64-setup
SetupIconFile=..\build\pyinstaller\wardlens\wardlens.ico
UninstallDisplayIcon={app}\{#AppExe}
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
CloseApplications=yes
RestartApplications=no

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[Files]
; The whole one-folder build; a reinstall replaces the program files and leaves the data folder alone.
Source: "{#SrcDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs
#if FileExists(AddBackslash(SourcePath) + VcRedist)
Source: "{#VcRedist}"; DestDir: "{tmp}"; Flags: deleteafterinstall; Check: VCRedistNeeded
#endif

[InstallDelete]
; Files of an older build that the new one no longer ships (Qt plugins, libraries) must not linger.
Type: filesandordirs; Name: "{app}\_internal"

[Dirs]
; The per-user data folder (the application also creates it on first start). Never removed by the uninstaller:
; it holds the encrypted patient store, its key file and backups.
Name: "{localappdata}\WardLens"; Flags: uninsneveruninstall; Check: not IsAdminInstallMode

[Icons]
Name: "{autoprograms}\{#AppName}"; Filename: "{app}\{#AppExe}"; Parameters: "gui"; WorkingDir: "{app}"
Name: "{autoprograms}\{#AppName} command prompt"; Filename: "{cmd}"; Parameters: "/k ""cd /d ""{app}"" && WardLens-cli.exe --help"""; WorkingDir: "{app}"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\{#AppExe}"; Parameters: "gui"; WorkingDir: "{app}"; Tasks: desktopicon

[Run]
#if FileExists(AddBackslash(SourcePath) + VcRedist)
Filename: "{tmp}\vc_redist.x64.exe"; Parameters: "/install /quiet /norestart"; StatusMsg: "Installing the Microsoft Visual C++ runtime..."; Check: VCRedistNeeded; Flags: waituntilterminated
#endif
Filename: "{app}\{#AppExe}"; Parameters: "gui"; Description: "{cm:LaunchProgram,{#AppName}}"; Flags: nowait postinstall skipifsilent

[UninstallDelete]
Type: filesandordirs; Name: "{app}\_internal"

[Code]
// The VC++ 2015-2022 x64 runtime registers itself here; PyInstaller bundles python311.dll's own
// vcruntime140.dll, but onnxruntime, Qt and xgboost also need msvcp140.dll / vcruntime140_1.dll.
function VCRedistNeeded: Boolean;
var
  Installed: Cardinal;
begin
  Result := not (RegQueryDWordValue(HKLM64, 'SOFTWARE\Microsoft\VisualStudio\14.0\VC\Runtimes\x64', 'Installed', Installed)
                 and (Installed = 1));
end;

function InitializeSetup: Boolean;
begin
  Result := True;
  if VCRedistNeeded then
    Log('The Microsoft Visual C++ 2015-2022 x64 runtime is not registered; WardLens bundles the DLLs it found at build time, '
        + 'and installs vc_redist.x64.exe when the installer carries it.');
end;
