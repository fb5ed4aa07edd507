<#
.SYNOPSIS
Entrypoint of the msiserviceclient image: adds the 169.254.169.254/32 route via the container's default
gateway, then starts MsiProxy.

.DESCRIPTION
A Windows container on a NAT network has no route to IMDS. This script, run as ContainerAdministrator
(route changes need elevation), makes sure the route exists before MsiProxy accepts a request:
1. reads `route print -4`; when 169.254.169.254/32 is already there it changes nothing;
2. otherwise finds the default gateway (-Gateway, else Get-NetRoute when the NetTCPIP module exists,
   else the 0.0.0.0/0 route of `route print`, else `ipconfig`) and runs
   `route add 169.254.169.254 mask 255.255.255.255 <gateway>`, then checks the route is really there;
3. starts MsiProxy: `dotnet <ProxyPath> <args>` for a .dll, `<ProxyPath> <args>` for an .exe, and exits
   with its exit code. Arguments after `--` are passed through unchanged. pwsh -File does not honour `--`,
   so an ENTRYPOINT that passes arguments uses -Command (see EXAMPLE); settings can also come from
   environment variables (ASPNETCORE_URLS, MsiProxy__...), which need no arguments at all.
Writes one JSON line before starting MsiProxy: {"action":"route-added|route-present","gateway":"…","route":"169.254.169.254/32"}.

Exit codes: MsiProxy's own exit code once it started; 2 invalid input; 3 prerequisite missing (no gateway,
not elevated, MsiProxy not found); 4 `route add` failed or the route did not appear.

.PARAMETER ProxyPath
MsiProxy.dll (started with dotnet) or MsiProxy.exe. Default: $env:MSIPROXY_PATH, else C:\app\MsiProxy.dll.

.PARAMETER Gateway
Use this gateway instead of discovering it.

.PARAMETER MetadataAddress
Default 169.254.169.254.

.PARAMETER ProxyArguments
Everything after `--`, passed to MsiProxy.

.EXAMPLE
pwsh -NoProfile -Command "& C:\msi-proxy\Start-MsiServiceClient.ps1 -ProxyPath C:\app\MsiProxy.dll -- --urls http://+:80; exit $LASTEXITCODE"

.EXAMPLE
pwsh -NoProfile -File C:\msi-proxy\Start-MsiServiceClient.ps1 -ProxyPath C:\app\MsiProxy.exe
#>
[CmdletBinding(SupportsShouldProcess, PositionalBinding = $false)]
param(
    [string] $ProxyPath = $(if ($env:MSIPROXY_PATH) { $env:MSIPROXY_PATH } else { 'C:\app\MsiProxy.dll' }),
    [string] $Gateway,
    [string] $MetadataAddress = '169.254.169.254',
    [Parameter(ValueFromRemainingArguments)] [string[]] $ProxyArguments = @()
)
Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'
Import-Module (Join-Path $PSScriptRoot 'MsiProxyWiring.psm1')

function Add-MetadataRoute {
    Assert-Ipv4Address $MetadataAddress -Name 'MetadataAddress'
    if ($Gateway) { Assert-Ipv4Address $Gateway -Name 'Gateway' }

    $routes = Get-RouteTable
    $existing = Find-GatewayRoute $routes $MetadataAddress
    if ($existing) {
        return [ordered]@{ action = 'route-present'; gateway = $existing.Gateway; route = "$MetadataAddress/32" }
    }

    $via = $Gateway
    if (-not $via) { $via = Find-DefaultGateway $routes }
    if (-not $via) {
        throw (New-WiringError prerequisite_missing "No IPv4 default gateway found (route print, ipconfig); cannot route $MetadataAddress. Pass -Gateway or attach the container to a NAT network.")
    }
    if ($PSCmdlet.ShouldProcess("$MetadataAddress/32", "route add via $via")) {
        Invoke-CheckedNativeCommand route @('add', $MetadataAddress, 'mask', '255.255.255.255', $via) | Out-Null
        # route.exe does not always set a failing exit code, so the table is read again.
        if (-not (Find-GatewayRoute (Get-RouteTable) $MetadataAddress)) {
            throw (New-WiringError command_failed "route add $MetadataAddress via $via reported success but the route is not in 'route print'.")
        }
    }
    [ordered]@{ action = 'route-added'; gateway = $via; route = "$MetadataAddress/32" }
}

function Assert-ProxyPath {
    # Checked before the route is touched, so a broken image fails without changing anything.
    if (-not (Test-Path -LiteralPath $ProxyPath -PathType Leaf)) {
        throw (New-WiringError prerequisite_missing "MsiProxy was not found at '$ProxyPath'; pass -ProxyPath or set MSIPROXY_PATH.")
    }
}

try {
    Assert-ProxyPath
    Write-JsonLine (Add-MetadataRoute)
} catch {
    $failure = ConvertTo-WiringFailure $_
    $failure.Json
    exit $failure.ExitCode
}
if ($WhatIfPreference) { exit 0 }

# Started at the top level and not captured, so MsiProxy's logs stream to the container's stdout.
$global:LASTEXITCODE = 0
if ($ProxyPath -like '*.dll') { & dotnet $ProxyPath @ProxyArguments } else { & $ProxyPath @ProxyArguments }
exit $LASTEXITCODE
