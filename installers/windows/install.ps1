<#
.SYNOPSIS
  Install the Dockside edge agent as a Windows service (run in an elevated PowerShell).

.DESCRIPTION
  Copies dockside-agent.exe and the WinSW wrapper to %ProgramFiles%\Dockside\Agent, creates
  %ProgramData%\Dockside\Agent with data\ and logs\ (only SYSTEM, Administrators and the
  service's virtual account NT SERVICE\dockside-agent may touch them), installs agent.toml
  there if none exists, registers the service (automatic start, restart on failure) and starts it.
  Run it again to upgrade: the configuration and the data are kept. Not tested by CI.

.EXAMPLE
  .\install.ps1 -Binary .\dockside-agent.exe -Wrapper .\WinSW-x64.exe
  & "$env:ProgramFiles\Dockside\Agent\dockside-agent.exe" enroll --cloud HOST:PORT --token TOKEN `
      --data-dir "$env:ProgramData\Dockside\Agent\data"
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory = $true)][string]$Binary,
    [Parameter(Mandatory = $true)][string]$Wrapper,
    [string]$Config = (Join-Path $PSScriptRoot '..\dockside-agent.toml'),
    [switch]$NoStart
)
$ErrorActionPreference = 'Stop'

$principal = New-Object Security.Principal.WindowsPrincipal([Security.Principal.WindowsIdentity]::GetCurrent())
if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
    throw 'Run this script in an elevated PowerShell (Run as administrator).'
}
foreach ($file in @($Binary, $Wrapper, $Config, (Join-Path $PSScriptRoot 'dockside-agent-service.xml'))) {
    if (-not (Test-Path -LiteralPath $file -PathType Leaf)) { throw "There is no file ${file}: check the path." }
}
& $Binary --version | Out-Null
if ($LASTEXITCODE -ne 0) { throw "$Binary does not run ('--version' failed): is it the Windows build?" }

$program = Join-Path $env:ProgramFiles 'Dockside\Agent'
$state = Join-Path $env:ProgramData 'Dockside\Agent'
$account = 'NT SERVICE\dockside-agent'

$existing = Get-Service -Name 'dockside-agent' -ErrorAction SilentlyContinue
if ($existing) { Stop-Service -Name 'dockside-agent' -Force }

New-Item -ItemType Directory -Force -Path $program, $state, (Join-Path $state 'data'), (Join-Path $state 'logs') | Out-Null
# Copy beside, then rename over: never a moment without a whole binary.
Copy-Item -LiteralPath $Binary -Destination (Join-Path $program 'dockside-agent.exe.installing') -Force
Move-Item -LiteralPath (Join-Path $program 'dockside-agent.exe.installing') -Destination (Join-Path $program 'dockside-agent.exe') -Force
Copy-Item -LiteralPath $Wrapper -Destination (Join-Path $program 'dockside-agent-service.exe') -Force
Copy-Item -LiteralPath (Join-Path $PSScriptRoot 'dockside-agent-service.xml') -Destination $program -Force
$toml = Join-Path $state 'agent.toml'
if (Test-Path -LiteralPath $toml) { Write-Host "Keeping the existing $toml" } else { Copy-Item -LiteralPath $Config -Destination $toml }

$wrapperExe = Join-Path $program 'dockside-agent-service.exe'
if (-not $existing) { & $wrapperExe install; if ($LASTEXITCODE -ne 0) { throw 'WinSW could not register the service.' } }

# Secrets stay out of agent.toml; the credential lives in data\agent.db, readable only by these.
icacls $state /inheritance:r /grant:r 'SYSTEM:(OI)(CI)F' 'Administrators:(OI)(CI)F' "${account}:(OI)(CI)M" | Out-Null
# Self-update swaps the binary in place: the service account may modify the program folder.
icacls $program /grant "${account}:(OI)(CI)M" | Out-Null

if (-not $NoStart) { Start-Service -Name 'dockside-agent' }
Write-Host "Installed $(& $Binary --version). Enroll once, then restart the service:"
Write-Host "  & `"$program\dockside-agent.exe`" enroll --cloud HOST:PORT --token TOKEN --data-dir `"$state\data`""
Write-Host '  Restart-Service dockside-agent'
