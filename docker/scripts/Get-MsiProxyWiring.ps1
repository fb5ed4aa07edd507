<#
.SYNOPSIS
Reports the MsiProxy wiring of this Windows container as one JSON line (diagnostics and reconcile).

.DESCRIPTION
Read-only. Runs `netsh interface ipv4 show addresses`, `netsh interface portproxy show v4tov4` and
`route print -4` and reports:
  {"metadataAddress":"169.254.169.254","address":{"present":true,"interface":"vEthernet (Ethernet)"},
   "portproxy":[{"connectAddress":"172.28.16.5","connectPort":80}],
   "route":{"present":false,"gateway":null},"defaultGateway":"172.28.16.1",
   "clientWired":true,"clientIsolated":true,"expectedProxy":"172.28.16.5:80","matchesExpected":true}
clientWired: the address and exactly one portproxy rule for it exist (what Set-MsiProxyWiring.ps1 makes).
route: a 169.254.169.254/32 route through a gateway (what Start-MsiServiceClient.ps1 makes in the msiserviceclient
container; the On-link route Windows adds for the local metadata address is not one).
clientIsolated: wired and no such route, so the portproxy is this container's only way to 169.254.169.254.
With -ProxyAddress, matchesExpected tells whether the rule points there, so a reconcile loop can decide
whether to call Set-MsiProxyWiring.ps1 at all.

Exit codes: 0 reported (whatever the state); 2 invalid input; 3 netsh/route missing; 4 a command failed.
No elevation is needed.

.PARAMETER ProxyAddress
Optional expected MsiProxy address to compare the rule against.

.PARAMETER ProxyPort
Expected MsiProxy port, default 80 (used with -ProxyAddress).

.PARAMETER MetadataAddress
Default 169.254.169.254.

.EXAMPLE
Get-MsiProxyWiring.ps1 -ProxyAddress 172.28.16.5
#>
[CmdletBinding(PositionalBinding = $false)]
param(
    [string] $ProxyAddress,
    [int] $ProxyPort = 80,
    [string] $MetadataAddress = '169.254.169.254'
)
Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'
Import-Module (Join-Path $PSScriptRoot 'MsiProxyWiring.psm1')

try {
    Assert-Ipv4Address $MetadataAddress -Name 'MetadataAddress'
    if ($ProxyAddress) { Assert-Ipv4Address $ProxyAddress -Name 'ProxyAddress' }
    Assert-Port $ProxyPort -Name 'ProxyPort'

    $state = Get-ContainerWiringState -MetadataAddress $MetadataAddress
    $routes = Get-RouteTable
    $route = Find-GatewayRoute $routes $MetadataAddress
    $rules = @($state.Rules | ForEach-Object { [ordered]@{ connectAddress = $_.ConnectAddress; connectPort = $_.ConnectPort } })
    $clientWired = [bool]$state.AddressInterface -and $rules.Count -eq 1

    $report = [ordered]@{
        metadataAddress = $MetadataAddress
        address = [ordered]@{ present = [bool]$state.AddressInterface; interface = $state.AddressInterface }
        portproxy = $rules
        route = [ordered]@{ present = [bool]$route; gateway = $(if ($route) { $route.Gateway } else { $null }) }
        defaultGateway = Get-DefaultGatewayFromRoutes $routes
        clientWired = $clientWired
        clientIsolated = $clientWired -and -not $route
    }
    if ($ProxyAddress) {
        $report.expectedProxy = "${ProxyAddress}:$ProxyPort"
        $report.matchesExpected = $clientWired -and $rules[0].connectAddress -eq $ProxyAddress -and $rules[0].connectPort -eq $ProxyPort
    }
    Write-JsonLine $report
    exit 0
} catch {
    $failure = ConvertTo-WiringFailure $_
    $failure.Json
    exit $failure.ExitCode
}
