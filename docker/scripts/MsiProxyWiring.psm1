<#
.SYNOPSIS
Shared helpers for the MsiProxy wiring scripts: input validation, native-command calls, and parsers for
the text that Windows' netsh, route and ipconfig print inside a container.

.DESCRIPTION
Every native command goes through Invoke-NativeCommand so that tests (Pester, on Linux) can mock
netsh/route/ipconfig/docker by name. Parsers take the text a command printed and return objects; they
never run commands themselves, so they can be tested on recorded output.
Runs on Windows PowerShell 5.1 and PowerShell 7 (no ?? / ?: / -AsHashtable; no $IsWindows under strict mode).
The parsers read English output, which is what Windows container images ship.
#>
Set-StrictMode -Version Latest

# Exit codes shared by all scripts (documented in docs/wiring.md).
$script:ExitCodes = @{
    Success          = 0
    InvalidInput     = 2
    PrerequisiteMissing = 3
    CommandFailed    = 4
}

$script:Ipv4Pattern = '^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$'

class WiringException : System.Exception {
    [int] $ExitCode
    [string] $Code
    WiringException([string] $code, [int] $exitCode, [string] $message) : base($message) {
        $this.Code = $code
        $this.ExitCode = $exitCode
    }
}

function New-WiringError {
    <# Builds the exception every script turns into one JSON error line and an exit code. #>
    param(
        [Parameter(Mandatory)] [ValidateSet('invalid_input', 'prerequisite_missing', 'command_failed')] [string] $Code,
        [Parameter(Mandatory)] [string] $Message
    )
    $exitCode = switch ($Code) {
        'invalid_input' { $script:ExitCodes.InvalidInput }
        'prerequisite_missing' { $script:ExitCodes.PrerequisiteMissing }
        'command_failed' { $script:ExitCodes.CommandFailed }
    }
    [WiringException]::new($Code, $exitCode, $Message)
}

function ConvertTo-WiringFailure {
    <#
    Turns a caught error into what the container monitor parses: one JSON line
    ({"action":"error","error":…,"error_description":…}) and an exit code. Also writes the message to stderr.
    #>
    param([Parameter(Mandatory)] [System.Management.Automation.ErrorRecord] $ErrorRecord)
    $ex = $ErrorRecord.Exception
    if ($ex -is [WiringException]) {
        $code = $ex.Code; $exitCode = $ex.ExitCode
    } else {
        $code = 'command_failed'; $exitCode = $script:ExitCodes.CommandFailed
    }
    [Console]::Error.WriteLine("error: $($ex.Message)")
    [pscustomobject]@{
        ExitCode = $exitCode
        Json = Write-JsonLine ([ordered]@{ action = 'error'; error = $code; error_description = $ex.Message })
    }
}

function Write-JsonLine {
    <# Writes one compressed JSON line to the success stream (what `docker exec` hands to the monitor). #>
    param([Parameter(Mandatory)] $InputObject)
    ConvertTo-Json -InputObject $InputObject -Compress -Depth 6
}

function Test-Ipv4Address {
    <# True for a dotted-quad IPv4 address. [ipaddress]::TryParse is too lenient ("1" parses as 0.0.0.1). #>
    param([AllowNull()] [AllowEmptyString()] [string] $Address)
    return [bool]($Address -and $Address -match $script:Ipv4Pattern)
}

function Assert-Ipv4Address {
    param([AllowNull()] [AllowEmptyString()] [string] $Address, [Parameter(Mandatory)] [string] $Name)
    if (-not (Test-Ipv4Address $Address)) {
        throw (New-WiringError invalid_input "$Name must be an IPv4 address such as 172.28.16.5, got '$Address'.")
    }
}

function Assert-Port {
    param([int] $Port, [Parameter(Mandatory)] [string] $Name)
    if ($Port -lt 1 -or $Port -gt 65535) {
        throw (New-WiringError invalid_input "$Name must be between 1 and 65535, got $Port.")
    }
}

function Invoke-NativeCommand {
    <#
    Runs a native command and returns its exit code and output lines (stderr merged). The one place
    scripts call native programs, so tests can mock the program by name.
    #>
    param(
        [Parameter(Mandatory)] [string] $FilePath,
        [string[]] $ArgumentList = @()
    )
    if (-not (Get-Command $FilePath -ErrorAction SilentlyContinue)) {
        throw (New-WiringError prerequisite_missing "'$FilePath' was not found on PATH.")
    }
    # A mocked command may not set it; a stale value from an earlier call must not leak into this one.
    $global:LASTEXITCODE = 0
    $lines = @(& $FilePath @ArgumentList 2>&1 | ForEach-Object { "$_" })
    [pscustomobject]@{ ExitCode = [int]$global:LASTEXITCODE; Output = $lines; Text = ($lines -join "`n") }
}

function Invoke-CheckedNativeCommand {
    <#
    Runs a command that changes state and turns a failure into a clear error. "Requires elevation" is
    reported as a missing prerequisite, because the fix is `docker exec -u ContainerAdministrator`.
    #>
    param([Parameter(Mandatory)] [string] $FilePath, [string[]] $ArgumentList = @())
    $result = Invoke-NativeCommand -FilePath $FilePath -ArgumentList $ArgumentList
    $commandLine = (@($FilePath) + $ArgumentList) -join ' '
    if ($result.Text -match 'requires elevation|Access is denied') {
        throw (New-WiringError prerequisite_missing "'$commandLine' needs administrator rights: inside a container run it as ContainerAdministrator (docker exec -u ContainerAdministrator), on the host from an elevated PowerShell. Output: $($result.Text.Trim())")
    }
    # netsh can exit 0 after printing an error, so its text is checked as well as the exit code.
    if ($result.ExitCode -ne 0 -or $result.Text -match '(?m)^\s*(The (parameter|syntax|object|filename)[^\r\n]*(incorrect|invalid|exists|not found)|Element not found|The route addition failed)') {
        throw (New-WiringError command_failed "'$commandLine' failed (exit $($result.ExitCode)): $($result.Text.Trim())")
    }
    $result
}

function Test-CommandAvailable {
    <# True when a cmdlet or function exists, e.g. New-NetIPAddress (absent on Nano Server and on Linux). #>
    param([Parameter(Mandatory)] [string] $Name)
    return [bool](Get-Command -Name $Name -ErrorAction SilentlyContinue)
}

function ConvertFrom-NetshAddress {
    <#
    Parses `netsh interface ipv4 show addresses` into one object per interface:
    Name, Addresses (IPv4 strings), DefaultGateway (or $null).
    #>
    param([AllowEmptyCollection()] [string[]] $Lines)
    $interfaces = [System.Collections.Generic.List[object]]::new()
    $current = $null
    foreach ($line in $Lines) {
        if ($line -match '^\s*Configuration for interface "(?<name>[^"]+)"') {
            $current = [pscustomobject]@{ Name = $Matches.name; Addresses = [System.Collections.Generic.List[string]]::new(); DefaultGateway = $null }
            $interfaces.Add($current)
        } elseif ($null -ne $current -and $line -match '^\s*IP Address:\s+(?<ip>\d+\.\d+\.\d+\.\d+)\s*$') {
            $current.Addresses.Add($Matches.ip)
        } elseif ($null -ne $current -and $line -match '^\s*Default Gateway:\s+(?<ip>\d+\.\d+\.\d+\.\d+)\s*$') {
            $current.DefaultGateway = $Matches.ip
        }
    }
    , $interfaces.ToArray()
}

function ConvertFrom-NetshPortProxy {
    <#
    Parses `netsh interface portproxy show v4tov4` into rules: ListenAddress, ListenPort, ConnectAddress, ConnectPort.
    #>
    param([AllowEmptyCollection()] [string[]] $Lines)
    $rules = [System.Collections.Generic.List[object]]::new()
    foreach ($line in $Lines) {
        if ($line -match '^\s*(?<la>\S+)\s+(?<lp>\d+)\s+(?<ca>\S+)\s+(?<cp>\d+)\s*$') {
            $rules.Add([pscustomobject]@{
                ListenAddress = $Matches.la; ListenPort = [int]$Matches.lp
                ConnectAddress = $Matches.ca; ConnectPort = [int]$Matches.cp
            })
        }
    }
    , $rules.ToArray()
}

function ConvertFrom-RoutePrint {
    <#
    Parses the "IPv4 Route Table" part of `route print -4` into routes:
    Destination, Netmask, Gateway ('On-link' or an address), Interface, Metric, Persistent.
    #>
    param([AllowEmptyCollection()] [string[]] $Lines)
    $routes = [System.Collections.Generic.List[object]]::new()
    $section = $null
    foreach ($line in $Lines) {
        if ($line -match '^\s*IPv6 Route Table') { $section = $null; continue }
        if ($line -match '^\s*Active Routes:') { $section = 'active'; continue }
        if ($line -match '^\s*Persistent Routes:') { $section = 'persistent'; continue }
        if ($null -eq $section) { continue }
        if ($section -eq 'active' -and $line -match '^\s*(?<d>\d+\.\d+\.\d+\.\d+)\s+(?<m>\d+\.\d+\.\d+\.\d+)\s+(?<g>On-link|\d+\.\d+\.\d+\.\d+)\s+(?<i>\d+\.\d+\.\d+\.\d+)\s+(?<metric>\d+)\s*$') {
            $routes.Add([pscustomobject]@{ Destination = $Matches.d; Netmask = $Matches.m; Gateway = $Matches.g; Interface = $Matches.i; Metric = [int]$Matches.metric; Persistent = $false })
        } elseif ($section -eq 'persistent' -and $line -match '^\s*(?<d>\d+\.\d+\.\d+\.\d+)\s+(?<m>\d+\.\d+\.\d+\.\d+)\s+(?<g>\d+\.\d+\.\d+\.\d+)\s+(?<metric>Default|\d+)\s*$') {
            $routes.Add([pscustomobject]@{ Destination = $Matches.d; Netmask = $Matches.m; Gateway = $Matches.g; Interface = $null; Metric = $Matches.metric; Persistent = $true })
        }
    }
    , $routes.ToArray()
}

function Get-DefaultGatewayFromRoutes {
    <# The gateway of the active 0.0.0.0/0 route with the lowest metric, or $null. #>
    param([AllowEmptyCollection()] [object[]] $Routes)
    $default = $Routes |
        Where-Object { -not $_.Persistent -and $_.Destination -eq '0.0.0.0' -and $_.Netmask -eq '0.0.0.0' -and $_.Gateway -ne 'On-link' } |
        Sort-Object Metric | Select-Object -First 1
    if ($default) { return $default.Gateway }
    return $null
}

function ConvertFrom-Ipconfig {
    <#
    Reads the IPv4 default gateways from `ipconfig` output. Windows prints IPv6 gateways first and puts
    further gateways on continuation lines, e.g. "Default Gateway . . : fe80::1%4" then "      10.0.0.1".
    #>
    param([AllowEmptyCollection()] [string[]] $Lines)
    $gateways = [System.Collections.Generic.List[string]]::new()
    $inGateway = $false
    foreach ($line in $Lines) {
        if ($line -match '^\s*Default Gateway[ .]*:\s*(?<v>\S*)\s*$') {
            $inGateway = $true
            $value = $Matches.v
        } elseif ($inGateway -and $line -match '^\s+(?<v>[0-9a-fA-F:.%]+)\s*$') {
            $value = $Matches.v
        } else {
            $inGateway = $false
            continue
        }
        if (Test-Ipv4Address $value) { $gateways.Add($value) }
    }
    , $gateways.ToArray()
}

function Get-ContainerWiringState {
    <#
    Reads the wiring inside this container with netsh (present on Nano Server and Server Core):
    Interfaces (from `netsh interface ipv4 show addresses`), the interface holding the metadata address,
    and the portproxy rules that listen on the metadata address and port.
    #>
    param([Parameter(Mandatory)] [string] $MetadataAddress, [int] $ListenPort = 80)
    $addresses = Invoke-CheckedNativeCommand netsh @('interface', 'ipv4', 'show', 'addresses')
    $interfaces = ConvertFrom-NetshAddress $addresses.Output
    $proxies = Invoke-CheckedNativeCommand netsh @('interface', 'portproxy', 'show', 'v4tov4')
    $allRules = ConvertFrom-NetshPortProxy $proxies.Output
    $rules = @($allRules | Where-Object { $_.ListenAddress -eq $MetadataAddress -and $_.ListenPort -eq $ListenPort })
    $holder = $interfaces | Where-Object { $_.Addresses -contains $MetadataAddress } | Select-Object -First 1
    [pscustomobject]@{
        Interfaces = $interfaces
        AddressInterface = if ($holder) { $holder.Name } else { $null }
        Rules = $rules
    }
}

function Select-ContainerInterface {
    <#
    Picks the interface to put the metadata address on: the named one (which must exist), else the one
    interface that has a default gateway, else the first one that is not a loopback.
    #>
    param([AllowEmptyCollection()] [object[]] $Interfaces, [AllowNull()] [AllowEmptyString()] [string] $InterfaceAlias)
    if ($InterfaceAlias) {
        $named = $Interfaces | Where-Object { $_.Name -eq $InterfaceAlias } | Select-Object -First 1
        if (-not $named) {
            $known = ($Interfaces | ForEach-Object { "'$($_.Name)'" }) -join ', '
            throw (New-WiringError prerequisite_missing "Interface '$InterfaceAlias' not found; this container has: $known.")
        }
        return $named.Name
    }
    $candidates = @($Interfaces | Where-Object { $_.Name -notmatch 'Loopback' })
    $withGateway = @($candidates | Where-Object { $_.DefaultGateway })
    if ($withGateway.Count -ge 1) { return $withGateway[0].Name }
    if ($candidates.Count -ge 1) { return $candidates[0].Name }
    throw (New-WiringError prerequisite_missing 'No network interface other than loopback was found; pass -InterfaceAlias.')
}

function Get-RouteTable {
    <# The container's IPv4 routes, from `route print -4` (route.exe exists on every Windows image). #>
    $print = Invoke-CheckedNativeCommand route @('print', '-4')
    ConvertFrom-RoutePrint $print.Output
}

function Find-GatewayRoute {
    <#
    The active /32 route to Address through a next hop, or $null. An 'On-link' /32 route is not one: Windows
    adds that for an address the container holds itself (Set-MsiProxyWiring.ps1's metadata address), and
    traffic to a local address never leaves the container.
    #>
    param([AllowEmptyCollection()] [object[]] $Routes, [Parameter(Mandatory)] [string] $Address)
    $Routes | Where-Object {
        -not $_.Persistent -and $_.Destination -eq $Address -and $_.Netmask -eq '255.255.255.255' -and $_.Gateway -ne 'On-link'
    } | Select-Object -First 1
}

function Find-DefaultGateway {
    <#
    The container's IPv4 default gateway: Get-NetRoute when the NetTCPIP module exists, else the
    0.0.0.0/0 route in `route print`, else the "Default Gateway" of `ipconfig`. $null when none has one.
    #>
    param([AllowEmptyCollection()] [object[]] $Routes)
    if (Test-CommandAvailable 'Get-NetRoute') {
        $route = Get-NetRoute -DestinationPrefix '0.0.0.0/0' -AddressFamily IPv4 -ErrorAction SilentlyContinue |
            Where-Object { $_.NextHop -and $_.NextHop -ne '0.0.0.0' } |
            Sort-Object RouteMetric | Select-Object -First 1
        if ($route) { return [string]$route.NextHop }
    }
    $fromRoutes = Get-DefaultGatewayFromRoutes $Routes
    if ($fromRoutes) { return $fromRoutes }
    $ipconfig = Invoke-NativeCommand ipconfig
    $gateways = ConvertFrom-Ipconfig $ipconfig.Output
    if ($gateways.Count -gt 0) { return $gateways[0] }
    return $null
}

function Get-LabelledContainerIds {
    <# IDs of the running containers with a label filter such as msi-proxy.role=proxy (`docker ps --filter label=…`). #>
    param([Parameter(Mandatory)] [string] $Label)
    $ps = Invoke-CheckedNativeCommand docker @('ps', '--filter', "label=$Label", '--format', '{{.ID}}')
    @($ps.Output | ForEach-Object { $_.Trim() } | Where-Object { $_ })
}

function Get-ContainerNetworkAddress {
    <#
    The IPv4 address of a container on one Docker network, from
    `docker inspect --format "{{json .NetworkSettings.Networks}}" <id>`: on -Network, or on the only network where it has one.
    Returns Network, Address and Gateway.
    #>
    param([Parameter(Mandatory)] [string] $Id, [AllowNull()] [AllowEmptyString()] [string] $Network)
    $inspect = Invoke-CheckedNativeCommand docker @('inspect', '--format', '{{json .NetworkSettings.Networks}}', $Id)
    $networks = $inspect.Text | ConvertFrom-Json
    $candidates = @($networks.PSObject.Properties | Where-Object { $_.Value.IPAddress -and (-not $Network -or $_.Name -eq $Network) })
    if ($candidates.Count -ne 1) {
        $names = ($networks.PSObject.Properties | ForEach-Object { "$($_.Name)=$($_.Value.IPAddress)" }) -join ', '
        throw (New-WiringError prerequisite_missing "Cannot choose an address of container $Id (networks: $names); pass -Network.")
    }
    $chosen = $candidates[0]
    $gateway = if ($chosen.Value.PSObject.Properties['Gateway']) { $chosen.Value.Gateway } else { $null }
    [pscustomobject]@{ Network = $chosen.Name; Address = $chosen.Value.IPAddress; Gateway = $gateway }
}

function ConvertFrom-NetshFirewallRule {
    <#
    Parses `netsh advfirewall firewall show rule name=<name>` into one object per rule:
    Name, Enabled, Direction, LocalIP, RemoteIP, Protocol, Action (as netsh prints them).
    "No rules match the specified criteria." gives no object.
    #>
    param([AllowEmptyCollection()] [string[]] $Lines)
    $rules = [System.Collections.Generic.List[object]]::new()
    $current = $null
    foreach ($line in $Lines) {
        if ($line -match '^Rule Name:\s+(?<v>.+?)\s*$') {
            $current = [ordered]@{ Name = $Matches.v; Enabled = $null; Direction = $null; LocalIP = $null; RemoteIP = $null; Protocol = $null; Action = $null }
            $rules.Add($current)
        } elseif ($null -ne $current -and $line -match '^(?<k>Enabled|Direction|LocalIP|RemoteIP|Protocol|Action):\s+(?<v>.*?)\s*$') {
            $current[$Matches.k] = $Matches.v
        }
    }
    , @($rules | ForEach-Object { [pscustomobject]$_ })
}

function ConvertTo-Ipv4Number {
    param([Parameter(Mandatory)] [string] $Address)
    $bytes = ([ipaddress]$Address).GetAddressBytes()
    [uint32](([uint32]$bytes[0] -shl 24) -bor ([uint32]$bytes[1] -shl 16) -bor ([uint32]$bytes[2] -shl 8) -bor [uint32]$bytes[3])
}

function ConvertFrom-Ipv4Number {
    param([Parameter(Mandatory)] [uint32] $Number)
    '{0}.{1}.{2}.{3}' -f (($Number -shr 24) -band 255), (($Number -shr 16) -band 255), (($Number -shr 8) -band 255), ($Number -band 255)
}

function Get-Ipv4RangesExcept {
    <#
    The addresses of the CIDR subnets minus the excluded addresses, as netsh range strings
    ("172.21.198.0-172.21.198.10", or one address alone), sorted and merged.
    #>
    param([Parameter(Mandatory)] [string[]] $Subnet, [string[]] $Except = @())
    $ranges = [System.Collections.Generic.List[object]]::new()
    foreach ($cidr in $Subnet) {
        if ($cidr -notmatch '^(?<ip>[\d.]+)/(?<bits>\d{1,2})$' -or -not (Test-Ipv4Address $Matches.ip) -or [int]$Matches.bits -gt 32) {
            throw (New-WiringError invalid_input "Subnet must be a CIDR such as 172.21.198.0/24, got '$cidr'.")
        }
        $bits = [int]$Matches.bits
        $size = [uint64]1 -shl (32 - $bits)
        $start = [uint64](ConvertTo-Ipv4Number $Matches.ip) -band ([uint64]4294967296 - $size)
        $ranges.Add([pscustomobject]@{ Start = $start; End = $start + $size - 1 })
    }
    $merged = [System.Collections.Generic.List[object]]::new()
    foreach ($range in ($ranges | Sort-Object Start)) {
        $last = if ($merged.Count) { $merged[$merged.Count - 1] } else { $null }
        if ($last -and $range.Start -le $last.End + 1) { if ($range.End -gt $last.End) { $last.End = $range.End } }
        else { $merged.Add([pscustomobject]@{ Start = $range.Start; End = $range.End }) }
    }
    foreach ($address in $Except) {
        $n = [uint64](ConvertTo-Ipv4Number $address)
        $split = [System.Collections.Generic.List[object]]::new()
        foreach ($range in $merged) {
            if ($n -lt $range.Start -or $n -gt $range.End) { $split.Add($range); continue }
            if ($n -gt $range.Start) { $split.Add([pscustomobject]@{ Start = $range.Start; End = $n - 1 }) }
            if ($n -lt $range.End) { $split.Add([pscustomobject]@{ Start = $n + 1; End = $range.End }) }
        }
        $merged = $split
    }
    , @($merged | ForEach-Object {
        if ($_.Start -eq $_.End) { ConvertFrom-Ipv4Number ([uint32]$_.Start) }
        else { '{0}-{1}' -f (ConvertFrom-Ipv4Number ([uint32]$_.Start)), (ConvertFrom-Ipv4Number ([uint32]$_.End)) }
    })
}

Export-ModuleMember -Function @(
    'New-WiringError', 'ConvertTo-WiringFailure', 'Write-JsonLine',
    'Test-Ipv4Address', 'Assert-Ipv4Address', 'Assert-Port',
    'Invoke-NativeCommand', 'Invoke-CheckedNativeCommand', 'Test-CommandAvailable',
    'ConvertFrom-NetshAddress', 'ConvertFrom-NetshPortProxy', 'ConvertFrom-RoutePrint',
    'Get-DefaultGatewayFromRoutes', 'ConvertFrom-Ipconfig',
    'Get-ContainerWiringState', 'Select-ContainerInterface',
    'Get-RouteTable', 'Find-GatewayRoute', 'Find-DefaultGateway',
    'Get-LabelledContainerIds', 'Get-ContainerNetworkAddress',
    'ConvertFrom-NetshFirewallRule', 'ConvertTo-Ipv4Number', 'ConvertFrom-Ipv4Number', 'Get-Ipv4RangesExcept'
)
