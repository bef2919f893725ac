<#
.SYNOPSIS
  Remove the Dockside edge agent service (elevated PowerShell). -Purge also deletes its
  configuration, data and logs in %ProgramData%\Dockside\Agent. Not tested by CI.
#>
[CmdletBinding()]
param([switch]$Purge)
$ErrorActionPreference = 'Stop'

$program = Join-Path $env:ProgramFiles 'Dockside\Agent'
$state = Join-Path $env:ProgramData 'Dockside\Agent'
if (Get-Service -Name 'dockside-agent' -ErrorAction SilentlyContinue) {
    Stop-Service -Name 'dockside-agent' -Force
    & (Join-Path $program 'dockside-agent-service.exe') uninstall
}
Remove-Item -LiteralPath $program -Recurse -Force -ErrorAction SilentlyContinue
if ($Purge) {
    Remove-Item -LiteralPath $state -Recurse -Force -ErrorAction SilentlyContinue
    Write-Host 'Removed the agent, its configuration and its data.'
} else {
    Write-Host "Removed the agent service; kept $state (-Purge deletes it)."
}
