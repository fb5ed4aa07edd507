<#
.SYNOPSIS
Host-side helper for operators without the container monitor: wires every labelled Windows client
container to the labelled MsiProxy container.

.DESCRIPTION
Runs on the Docker host (any user allowed to use docker):
1. `docker ps --filter label=<ProxyLabel> --format {{.ID}}` must find exactly one running proxy container;
2. `docker inspect --format "{{json .NetworkSettings.Networks}}" <proxy>` gives its IPv4 address
   (on -Network, or the only network that has an address);
3. `docker ps --filter label=<ClientLabel> --format {{.ID}}` lists the client containers;
4. for each: `docker exec -u ContainerAdministrator <id> <shell> -NoProfile -NonInteractive -File
   <ScriptPath> -ProxyAddress <ip> -ProxyPort <port>` (plus -Remove with -Remove). <shell> is pwsh when the
   container has it (`docker exec <id> cmd /c where pwsh`), else powershell (Windows PowerShell 5.1).
The scripts must already be in the client container at ScriptPath's folder (C:\msi-proxy\ by default:
baked into the image, or `docker cp docker/scripts/. <id>:C:\msi-proxy\` on a process-isolated container).

Writes one JSON line per client: {"container":"<id>","exitCode":0,"result":{...the script's JSON...}}.
With -WhatIf only the read-only docker ps / inspect / where run; no docker exec changes anything.

Exit codes: 0 all clients wired; 2 invalid input; 3 no (or more than one) proxy container or no address;
4 docker failed or at least one client could not be wired.

.PARAMETER ProxyLabel
Label filter of the proxy container. Default msi-proxy.role=proxy.

.PARAMETER ClientLabel
Label filter of the client containers. Default msi-proxy.client=true.

.PARAMETER ProxyPort
Port MsiProxy listens on. Default 80.

.PARAMETER Network
Docker network whose address of the proxy to use (default: the only one with an address).

.PARAMETER ScriptPath
Path of Set-MsiProxyWiring.ps1 inside the client containers. Default C:\msi-proxy\Set-MsiProxyWiring.ps1.

.PARAMETER Remove
Unwires the clients instead.

.EXAMPLE
.\Invoke-MsiProxyWiring.ps1 -WhatIf

.EXAMPLE
.\Invoke-MsiProxyWiring.ps1 -ProxyPort 8080 -Network nat
#>
[CmdletBinding(SupportsShouldProcess, PositionalBinding = $false)]
param(
    [string] $ProxyLabel = 'msi-proxy.role=proxy',
    [string] $ClientLabel = 'msi-proxy.client=true',
    [int] $ProxyPort = 80,
    [string] $Network,
    [string] $ScriptPath = 'C:\msi-proxy\Set-MsiProxyWiring.ps1',
    [switch] $Remove
)
Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'
Import-Module (Join-Path $PSScriptRoot 'MsiProxyWiring.psm1')

function Get-ProxyAddress {
    $ids = @(Get-LabelledContainerIds $ProxyLabel)
    if ($ids.Count -ne 1) {
        throw (New-WiringError prerequisite_missing "Expected exactly one running container labelled '$ProxyLabel', found $($ids.Count).")
    }
    (Get-ContainerNetworkAddress -Id $ids[0] -Network $Network).Address
}

function Get-ContainerShell {
    param([string] $Id)
    $where = Invoke-NativeCommand docker @('exec', $Id, 'cmd', '/c', 'where', 'pwsh')
    if ($where.ExitCode -eq 0) { return 'pwsh' }
    return 'powershell'
}

function Invoke-ClientWiring {
    param([string] $Id, [string] $ProxyIp)
    $shell = Get-ContainerShell $Id
    $scriptArgs = if ($Remove) { @('-Remove') } else { @('-ProxyAddress', $ProxyIp, '-ProxyPort', "$ProxyPort") }
    $exec = @('exec', '-u', 'ContainerAdministrator', $Id, $shell, '-NoProfile', '-NonInteractive', '-File', $ScriptPath) + $scriptArgs
    $action = if ($Remove) { 'Unwire from MsiProxy' } else { "Wire 169.254.169.254:80 to ${ProxyIp}:$ProxyPort" }
    if (-not $PSCmdlet.ShouldProcess($Id, $action)) {
        return [ordered]@{ container = $Id; exitCode = 0; whatIf = $true; command = 'docker ' + ($exec -join ' ') }
    }
    $run = Invoke-NativeCommand docker $exec
    $json = $run.Output | Where-Object { $_ -like '{*' } | Select-Object -Last 1
    $result = if ($json) { $json | ConvertFrom-Json } else { [ordered]@{ action = 'error'; error_description = $run.Text } }
    [ordered]@{ container = $Id; exitCode = $run.ExitCode; result = $result }
}

try {
    Assert-Port $ProxyPort -Name 'ProxyPort'
    $proxyIp = $null
    if (-not $Remove) {
        $proxyIp = Get-ProxyAddress
        Assert-Ipv4Address $proxyIp -Name 'The proxy container address'
    }
    $failed = 0
    foreach ($id in @(Get-LabelledContainerIds $ClientLabel)) {
        $outcome = Invoke-ClientWiring -Id $id -ProxyIp $proxyIp
        if ($outcome.exitCode -ne 0) { $failed++ }
        Write-JsonLine $outcome
    }
    if ($failed -gt 0) { exit 4 }
    exit 0
} catch {
    $failure = ConvertTo-WiringFailure $_
    $failure.Json
    exit $failure.ExitCode
}
