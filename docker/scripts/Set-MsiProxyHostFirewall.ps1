<#
.SYNOPSIS
Host-side hardening for Windows Docker hosts: one Windows Firewall rule that blocks container traffic to
169.254.169.254 from every NAT network address except the msiserviceclient's, so that a container running as
ContainerAdministrator cannot give itself the route to IMDS and bypass MsiProxy.

.DESCRIPTION
Runs on the Docker host from an elevated PowerShell (Windows PowerShell 5.1 or PowerShell 7).
1. Subnets: -Subnet, else the IPv4 subnet of every Docker network with the nat driver
   (`docker network ls --filter driver=nat --format {{.Name}}`, then
   `docker network inspect --format "{{json .IPAM.Config}}" <name>`).
2. Exempt addresses: -ServiceClientAddress, else every address of the running containers labelled
   msi-proxy.role=msiserviceclient (`docker ps`, `docker inspect`). Give the msiserviceclient a fixed address
   (docker/compose/windows/compose.yaml does: MSIPROXY_SERVICECLIENT_IP), or the rule goes stale when it moves.
3. Reads the rule (`netsh advfirewall firewall show rule name=<RuleName>`); when it is missing or differs, deletes it and
   runs `netsh advfirewall firewall add rule name=<RuleName> dir=out action=block protocol=any
   remoteip=169.254.169.254 localip=<the subnets minus the exempt addresses> enable=yes profile=any`.
   A second run changes nothing. -Remove deletes the rule.

Why the host firewall: Microsoft documents that process-isolated Windows Server containers are filtered by "the
Windows hosts' firewall (enlightened with network namespaces)", and that on NAT networks their port ACLs are
Windows Firewall rules; Hyper-V isolated containers on NAT networks cannot be filtered from the host at all.
NOT verified on a real Windows host here: run Test-MsiProxyIsolation.ps1 afterwards, its elevated probe shows whether
the rule holds. Re-run this script after creating a NAT network. See docs/windows-isolation.md.

Writes one JSON line:
  {"action":"added|replaced|unchanged|removed","rule":"…","remoteIp":"169.254.169.254","localIp":["…"],"exempt":["…"],"whatIf":false}

Exit codes: 0 done; 2 invalid input; 3 prerequisite missing (not elevated, no NAT network, no msiserviceclient and no
-ServiceClientAddress, docker or netsh missing); 4 a command failed.

.PARAMETER Subnet
IPv4 CIDRs to block (default: the subnets of every nat network).

.PARAMETER ServiceClientAddress
Addresses allowed to reach IMDS (default: the msiserviceclient containers' addresses).

.PARAMETER Remove
Deletes the rule instead.

.EXAMPLE
.\Set-MsiProxyHostFirewall.ps1 -WhatIf

.EXAMPLE
.\Set-MsiProxyHostFirewall.ps1 -Subnet 172.21.198.0/24 -ServiceClientAddress 172.21.198.11
#>
[CmdletBinding(SupportsShouldProcess, PositionalBinding = $false)]
param(
    [string[]] $Subnet,
    [string[]] $ServiceClientAddress,
    [string] $ServiceClientLabel = 'msi-proxy.role=msiserviceclient',
    [string] $RuleName = 'MsiProxy-Block-IMDS-From-Containers',
    [string] $MetadataAddress = '169.254.169.254',
    [switch] $Remove
)
Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'
Import-Module (Join-Path $PSScriptRoot 'MsiProxyWiring.psm1')

function Get-NatSubnets {
    $names = Invoke-CheckedNativeCommand docker @('network', 'ls', '--filter', 'driver=nat', '--format', '{{.Name}}')
    $subnets = foreach ($name in @($names.Output | ForEach-Object { $_.Trim() } | Where-Object { $_ })) {
        $ipam = Invoke-CheckedNativeCommand docker @('network', 'inspect', '--format', '{{json .IPAM.Config}}', $name)
        @($ipam.Text | ConvertFrom-Json) | Where-Object { $_ -and $_.PSObject.Properties['Subnet'] -and $_.Subnet -match '^\d+\.\d+\.\d+\.\d+/\d+$' } | ForEach-Object { $_.Subnet }
    }
    $found = @($subnets | Select-Object -Unique)
    if ($found.Count -eq 0) { throw (New-WiringError prerequisite_missing 'No Docker network with the nat driver has an IPv4 subnet; pass -Subnet.') }
    $found
}

function Get-ServiceClientAddresses {
    $addresses = foreach ($id in @(Get-LabelledContainerIds $ServiceClientLabel)) {
        $inspect = Invoke-CheckedNativeCommand docker @('inspect', '--format', '{{json .NetworkSettings.Networks}}', $id)
        ($inspect.Text | ConvertFrom-Json).PSObject.Properties | ForEach-Object { $_.Value.IPAddress } | Where-Object { Test-Ipv4Address $_ }
    }
    $found = @($addresses | Select-Object -Unique)
    if ($found.Count -eq 0) {
        throw (New-WiringError prerequisite_missing "No running container labelled '$ServiceClientLabel' has an address; start the msiserviceclient first or pass -ServiceClientAddress (the rule must not cut it off IMDS).")
    }
    $found
}

function Get-ExistingRules {
    $show = Invoke-NativeCommand netsh @('advfirewall', 'firewall', 'show', 'rule', "name=$RuleName")
    if ($show.Text -match 'No rules match the specified criteria') { return , @() }
    if ($show.Text -match 'requires elevation|Access is denied') {
        throw (New-WiringError prerequisite_missing "'netsh advfirewall firewall show rule' needs an elevated PowerShell on the host. Output: $($show.Text.Trim())")
    }
    if ($show.ExitCode -ne 0) { throw (New-WiringError command_failed "'netsh advfirewall firewall show rule name=$RuleName' failed (exit $($show.ExitCode)): $($show.Text.Trim())") }
    $rules = ConvertFrom-NetshFirewallRule $show.Output
    , $rules
}

function ConvertTo-AddressSet {
    <# netsh prints a single address as a.b.c.d/32 and a range as given; compare without that suffix. #>
    param([AllowNull()] [AllowEmptyString()] [string] $List)
    @(@("$List" -split ',') | ForEach-Object { ($_.Trim()) -replace '/32$', '' } | Where-Object { $_ } | Sort-Object)
}

function Test-RuleMatches {
    param([object[]] $Rules, [string[]] $LocalIp)
    if ($Rules.Count -ne 1) { return $false }
    $rule = $Rules[0]
    $rule.Enabled -eq 'Yes' -and $rule.Direction -eq 'Out' -and $rule.Action -eq 'Block' -and
        ((ConvertTo-AddressSet $rule.RemoteIP) -join ',') -eq $MetadataAddress -and
        ((ConvertTo-AddressSet $rule.LocalIP) -join ',') -eq ((@($LocalIp) | Sort-Object) -join ',')
}

function Remove-Rule {
    Invoke-CheckedNativeCommand netsh @('advfirewall', 'firewall', 'delete', 'rule', "name=$RuleName") | Out-Null
}

try {
    Assert-Ipv4Address $MetadataAddress -Name 'MetadataAddress'
    if (-not $RuleName -or $RuleName -match '[\s"=]') { throw (New-WiringError invalid_input "RuleName must have no spaces, quotes or '=', got '$RuleName'.") }
    foreach ($address in @($ServiceClientAddress | Where-Object { $_ })) { Assert-Ipv4Address $address -Name 'ServiceClientAddress' }

    if ($Remove) {
        $existing = Get-ExistingRules
        if ($existing.Count -gt 0 -and $PSCmdlet.ShouldProcess($RuleName, 'Delete firewall rule')) { Remove-Rule }
        Write-JsonLine ([ordered]@{ action = $(if ($existing.Count -gt 0) { 'removed' } else { 'unchanged' }); rule = $RuleName; whatIf = [bool]$WhatIfPreference })
        exit 0
    }

    $subnets = if ($Subnet) { $Subnet } else { Get-NatSubnets }
    $exempt = @(if ($ServiceClientAddress) { $ServiceClientAddress } else { Get-ServiceClientAddresses })
    $localIp = Get-Ipv4RangesExcept -Subnet $subnets -Except $exempt
    if ($localIp.Count -eq 0) { throw (New-WiringError invalid_input 'The subnets hold no address besides the exempt ones; nothing to block.') }

    $existing = Get-ExistingRules
    $action = 'unchanged'
    if (-not (Test-RuleMatches $existing $localIp)) {
        $action = if ($existing.Count -gt 0) { 'replaced' } else { 'added' }
        if ($PSCmdlet.ShouldProcess($RuleName, "Block $MetadataAddress from $($localIp -join ',')")) {
            if ($existing.Count -gt 0) { Remove-Rule }
            Invoke-CheckedNativeCommand netsh @('advfirewall', 'firewall', 'add', 'rule', "name=$RuleName", 'dir=out', 'action=block',
                'protocol=any', "remoteip=$MetadataAddress", "localip=$($localIp -join ',')", 'enable=yes', 'profile=any') | Out-Null
        }
    }
    Write-JsonLine ([ordered]@{ action = $action; rule = $RuleName; remoteIp = $MetadataAddress; localIp = $localIp; exempt = $exempt; whatIf = [bool]$WhatIfPreference })
    exit 0
} catch {
    $failure = ConvertTo-WiringFailure $_
    $failure.Json
    exit $failure.ExitCode
}
