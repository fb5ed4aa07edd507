<#
.SYNOPSIS
Wires (or unwires) 169.254.169.254:80 inside a Windows client container to the MsiProxy container.

.DESCRIPTION
Runs inside a Windows client container as ContainerAdministrator (the container monitor calls it with
`docker exec -u ContainerAdministrator <id> powershell -File C:\msi-proxy\Set-MsiProxyWiring.ps1 ...`).
1. Deletes a 169.254.169.254/32 route through a gateway if the container has one (`route delete
   169.254.169.254 mask 255.255.255.255 <gateway>`): that route is the msiserviceclient's way to IMDS, and in
   a client it would be a way around the proxy (docs/windows-isolation.md).
2. Adds the metadata address as a /32 to the container's interface, with
   New-NetIPAddress when the NetTCPIP module exists (Server Core), else
   `netsh interface ipv4 add address "<alias>" 169.254.169.254 255.255.255.255` (Nano Server).
   From then on 169.254.169.254 is local: port 80 goes to the portproxy, every other port stays in the container.
3. Adds `netsh interface portproxy add v4tov4 listenaddress=169.254.169.254 listenport=80
   connectaddress=<proxy> connectport=<port>`; a rule pointing elsewhere is deleted first.
It reads the current state first and changes only what differs, so running it again is safe (portproxy
state is lost when a container restarts, so the monitor re-runs it then). -Remove undoes 2 and 3.

Writes one JSON line on stdout:
  {"action":"wired|unchanged|removed","proxy":"<ip>","port":<port>,"interface":"<alias>","changes":[...],"whatIf":false}
or on failure {"action":"error","error":"invalid_input|prerequisite_missing|command_failed","error_description":"..."}.

Exit codes: 0 done; 2 invalid input; 3 prerequisite missing (not elevated, no netsh, interface not found);
4 a netsh or route command failed (or the route did not go away).

.PARAMETER ProxyAddress
IPv4 address of the MsiProxy container. Required unless -Remove.

.PARAMETER ProxyPort
Port MsiProxy listens on (1-65535). Default 80.

.PARAMETER InterfaceAlias
Interface to put the metadata address on. Default: the interface with a default gateway.

.PARAMETER MetadataAddress
Address the apps call. Default 169.254.169.254.

.PARAMETER Remove
Deletes the portproxy rule and the metadata address instead of adding them.

.EXAMPLE
Set-MsiProxyWiring.ps1 -ProxyAddress 172.28.16.5 -ProxyPort 8080

.EXAMPLE
Set-MsiProxyWiring.ps1 -Remove
#>
[CmdletBinding(SupportsShouldProcess, PositionalBinding = $false)]
param(
    [string] $ProxyAddress,
    [int] $ProxyPort = 80,
    [string] $InterfaceAlias,
    [switch] $Remove,
    [string] $MetadataAddress = '169.254.169.254'
)
Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'
Import-Module (Join-Path $PSScriptRoot 'MsiProxyWiring.psm1')

# Apps call http://169.254.169.254/ on the default HTTP port, so the listener is always port 80.
$listenPort = 80

function Add-MetadataAddress {
    param([string] $Alias)
    if (Test-CommandAvailable 'New-NetIPAddress') {
        # SkipAsSource: the container must never pick the metadata address as the source of its own traffic.
        New-NetIPAddress -InterfaceAlias $Alias -IPAddress $MetadataAddress -PrefixLength 32 -SkipAsSource $true | Out-Null
    } else {
        Invoke-CheckedNativeCommand netsh @('interface', 'ipv4', 'add', 'address', $Alias, $MetadataAddress, '255.255.255.255') | Out-Null
    }
}

function Remove-MetadataAddress {
    param([string] $Alias)
    if (Test-CommandAvailable 'Remove-NetIPAddress') {
        Remove-NetIPAddress -InterfaceAlias $Alias -IPAddress $MetadataAddress -Confirm:$false | Out-Null
    } else {
        Invoke-CheckedNativeCommand netsh @('interface', 'ipv4', 'delete', 'address', $Alias, $MetadataAddress) | Out-Null
    }
}

function Remove-MetadataRoute {
    param([string] $Gateway)
    Invoke-CheckedNativeCommand route @('delete', $MetadataAddress, 'mask', '255.255.255.255', $Gateway) | Out-Null
    # route.exe does not always set a failing exit code, so the table is read again.
    if (Find-GatewayRoute (Get-RouteTable) $MetadataAddress) {
        throw (New-WiringError command_failed "route delete $MetadataAddress via $Gateway reported success but the route is still in 'route print'.")
    }
}

function Remove-PortProxyRule {
    Invoke-CheckedNativeCommand netsh @('interface', 'portproxy', 'delete', 'v4tov4', "listenaddress=$MetadataAddress", "listenport=$listenPort") | Out-Null
}

function Add-PortProxyRule {
    Invoke-CheckedNativeCommand netsh @('interface', 'portproxy', 'add', 'v4tov4', "listenaddress=$MetadataAddress", "listenport=$listenPort", "connectaddress=$ProxyAddress", "connectport=$ProxyPort") | Out-Null
}

function Invoke-Wire {
    Assert-Ipv4Address $ProxyAddress -Name 'ProxyAddress'
    if ($ProxyAddress -eq $MetadataAddress -or $ProxyAddress -eq '0.0.0.0' -or $ProxyAddress -eq '255.255.255.255') {
        throw (New-WiringError invalid_input "ProxyAddress '$ProxyAddress' cannot be the MsiProxy container's address.")
    }
    Assert-Port $ProxyPort -Name 'ProxyPort'

    $state = Get-ContainerWiringState -MetadataAddress $MetadataAddress -ListenPort $listenPort
    $alias = Select-ContainerInterface $state.Interfaces $InterfaceAlias
    $changes = [System.Collections.Generic.List[string]]::new()

    $bypass = Find-GatewayRoute (Get-RouteTable) $MetadataAddress
    if ($bypass) {
        if ($PSCmdlet.ShouldProcess("$MetadataAddress/32", "Delete route via $($bypass.Gateway)")) { Remove-MetadataRoute $bypass.Gateway }
        $changes.Add('route-removed')
    }

    if (-not $state.AddressInterface) {
        if ($PSCmdlet.ShouldProcess($alias, "Add $MetadataAddress/32")) { Add-MetadataAddress $alias }
        $changes.Add('address')
    } else {
        $alias = $state.AddressInterface
    }

    $wanted = @($state.Rules | Where-Object { $_.ConnectAddress -eq $ProxyAddress -and $_.ConnectPort -eq $ProxyPort })
    if ($wanted.Count -eq 0) {
        if ($state.Rules.Count -gt 0) {
            $stale = ($state.Rules | ForEach-Object { "$($_.ConnectAddress):$($_.ConnectPort)" }) -join ', '
            if ($PSCmdlet.ShouldProcess("${MetadataAddress}:$listenPort", "Delete portproxy rule to $stale")) { Remove-PortProxyRule }
            $changes.Add('portproxy-replaced')
        }
        if ($PSCmdlet.ShouldProcess("${MetadataAddress}:$listenPort", "Add portproxy rule to ${ProxyAddress}:$ProxyPort")) { Add-PortProxyRule }
        $changes.Add('portproxy')
    }

    $action = if ($changes.Count -gt 0) { 'wired' } else { 'unchanged' }
    [ordered]@{ action = $action; proxy = $ProxyAddress; port = $ProxyPort; interface = $alias; changes = $changes.ToArray(); whatIf = [bool]$WhatIfPreference }
}

function Invoke-Unwire {
    if ($ProxyAddress) { Assert-Ipv4Address $ProxyAddress -Name 'ProxyAddress' }
    $state = Get-ContainerWiringState -MetadataAddress $MetadataAddress -ListenPort $listenPort
    $changes = [System.Collections.Generic.List[string]]::new()
    $previous = $null
    if ($state.Rules.Count -gt 0) {
        $previous = $state.Rules[0].ConnectAddress
        if ($PSCmdlet.ShouldProcess("${MetadataAddress}:$listenPort", 'Delete portproxy rule')) { Remove-PortProxyRule }
        $changes.Add('portproxy')
    }
    if ($state.AddressInterface) {
        if ($PSCmdlet.ShouldProcess($state.AddressInterface, "Remove $MetadataAddress")) { Remove-MetadataAddress $state.AddressInterface }
        $changes.Add('address')
    }
    $action = if ($changes.Count -gt 0) { 'removed' } else { 'unchanged' }
    [ordered]@{ action = $action; proxy = $previous; interface = $state.AddressInterface; changes = $changes.ToArray(); whatIf = [bool]$WhatIfPreference }
}

try {
    Assert-Ipv4Address $MetadataAddress -Name 'MetadataAddress'
    if ($Remove) {
        $result = Invoke-Unwire
    } elseif (-not $ProxyAddress) {
        throw (New-WiringError invalid_input 'ProxyAddress is required (or pass -Remove).')
    } else {
        $result = Invoke-Wire
    }
    Write-JsonLine $result
    exit 0
} catch {
    $failure = ConvertTo-WiringFailure $_
    $failure.Json
    exit $failure.ExitCode
}
