# A stateful stand-in for the netsh and route programs of a Windows container, for Pester mocks on Linux.
# It records every call (as a command line) and prints what Windows prints for the same state, so a
# script can be run twice against it and must find its own earlier changes.
Set-StrictMode -Version Latest

# Pester can only mock a command that exists. These stand-ins make the Windows programs exist on Linux
# and shadow a real docker: a call that a test forgot to mock fails loudly instead of doing anything.
foreach ($program in 'netsh', 'route', 'ipconfig', 'docker', 'dotnet') {
    Set-Item -Path "function:global:$program" -Value ([scriptblock]::Create("throw '$program was called without a Pester mock'"))
}

function New-FakeContainer {
    <# Makes a container's network state the one netsh and route act on ($global:Fake) and returns it. #>
    param(
        [string] $Alias = 'vEthernet (Ethernet)',
        [string] $Address = '172.28.20.14',
        [string] $Gateway = '172.28.16.1',
        [string[]] $ExtraAddresses = @(),
        [object[]] $Rules = @(),
        [bool] $Elevated = $true
    )
    $global:Fake = New-FakeContainerState @PSBoundParameters
    $global:Fake
}

function New-FakeContainerState {
    <# The network state of one Windows container: its interface, addresses, portproxy rules and added routes. #>
    param(
        [string] $Alias = 'vEthernet (Ethernet)',
        [string] $Address = '172.28.20.14',
        [string] $Gateway = '172.28.16.1',
        [string[]] $ExtraAddresses = @(),
        [object[]] $Rules = @(),
        [bool] $Elevated = $true
    )
    $state = [pscustomobject]@{
        Alias = $Alias
        Address = $Address
        Gateway = $Gateway
        Addresses = [System.Collections.Generic.List[string]]::new([string[]](@($Address) + $ExtraAddresses))
        Rules = [System.Collections.Generic.List[object]]::new()
        Routes = [System.Collections.Generic.List[object]]::new()
        Elevated = $Elevated
        Calls = [System.Collections.Generic.List[string]]::new()
    }
    foreach ($rule in $Rules) { $state.Rules.Add($rule) }
    $state
}

function Format-FakeCall {
    param([string] $Program, [object[]] $Arguments)
    $quoted = foreach ($a in $Arguments) { if ("$a" -match '\s') { '"{0}"' -f $a } else { "$a" } }
    (@($Program) + $quoted) -join ' '
}

function Get-FakeCalls { param([string] $Program) @($global:Fake.Calls | Where-Object { $_ -like "$Program *" }) }

function Get-FakeChangingCalls {
    @($global:Fake.Calls | Where-Object { $_ -match '^(netsh .*\b(add|delete|set)\b|route (add|delete|change)\b)' })
}

function Invoke-FakeNetsh {
    $f = $global:Fake
    $f.Calls.Add((Format-FakeCall 'netsh' $args))
    $global:LASTEXITCODE = 0
    $line = $args -join ' '
    $isChange = $line -match '\b(add|delete|set)\b'
    if ($isChange -and -not $f.Elevated) {
        $global:LASTEXITCODE = 1
        return 'The requested operation requires elevation (Run as administrator).'
    }
    switch -Regex ($line) {
        '^interface ipv4 show addresses$' {
            ''
            "Configuration for interface `"$($f.Alias)`""
            '    DHCP enabled:                         No'
            foreach ($a in $f.Addresses) {
                '    IP Address:                           {0}' -f $a
                if ($a -eq $f.Address) { '    Subnet Prefix:                        172.28.16.0/20 (mask 255.255.240.0)' }
                else { '    Subnet Prefix:                        {0}/32 (mask 255.255.255.255)' -f $a }
            }
            if ($f.Gateway) {
                '    Default Gateway:                      {0}' -f $f.Gateway
                '    Gateway Metric:                       256'
            }
            '    InterfaceMetric:                      5000'
            ''
            'Configuration for interface "Loopback Pseudo-Interface 1"'
            '    DHCP enabled:                         No'
            '    IP Address:                           127.0.0.1'
            '    Subnet Prefix:                        127.0.0.0/8 (mask 255.0.0.0)'
            '    InterfaceMetric:                      75'
            ''
            return
        }
        '^interface portproxy show v4tov4$' {
            if ($f.Rules.Count -eq 0) { return }
            ''
            'Listen on ipv4:             Connect to ipv4:'
            ''
            'Address         Port        Address         Port'
            '--------------- ----------  --------------- ----------'
            foreach ($r in $f.Rules) { '{0,-15} {1,-11} {2,-15} {3}' -f $r.ListenAddress, $r.ListenPort, $r.ConnectAddress, $r.ConnectPort }
            ''
            return
        }
        '^interface ipv4 add address (?<alias>.+) (?<ip>\S+) 255\.255\.255\.255$' {
            if ($Matches.alias -ne $f.Alias) { $global:LASTEXITCODE = 1; return 'The filename, directory name, or volume label syntax is incorrect.' }
            if ($f.Addresses -contains $Matches.ip) { $global:LASTEXITCODE = 1; return 'The object already exists.' }
            $f.Addresses.Add($Matches.ip)
            return ''
        }
        '^interface ipv4 delete address (?<alias>.+) (?<ip>\S+)$' {
            if (-not $f.Addresses.Remove($Matches.ip)) { $global:LASTEXITCODE = 1; return 'Element not found.' }
            return ''
        }
        '^interface portproxy add v4tov4 listenaddress=(?<la>\S+) listenport=(?<lp>\d+) connectaddress=(?<ca>\S+) connectport=(?<cp>\d+)$' {
            $existing = @($f.Rules | Where-Object { $_.ListenAddress -eq $Matches.la -and $_.ListenPort -eq [int]$Matches.lp })
            foreach ($e in $existing) { [void]$f.Rules.Remove($e) }
            $f.Rules.Add([pscustomobject]@{ ListenAddress = $Matches.la; ListenPort = [int]$Matches.lp; ConnectAddress = $Matches.ca; ConnectPort = [int]$Matches.cp })
            return ''
        }
        '^interface portproxy delete v4tov4 listenaddress=(?<la>\S+) listenport=(?<lp>\d+)$' {
            $existing = @($f.Rules | Where-Object { $_.ListenAddress -eq $Matches.la -and $_.ListenPort -eq [int]$Matches.lp })
            if ($existing.Count -eq 0) { $global:LASTEXITCODE = 1; return 'The system cannot find the file specified.' }
            foreach ($e in $existing) { [void]$f.Rules.Remove($e) }
            return ''
        }
        default { $global:LASTEXITCODE = 1; "The following command was not found: $line." }
    }
}

function Invoke-FakeRoute {
    $f = $global:Fake
    $f.Calls.Add((Format-FakeCall 'route' $args))
    $global:LASTEXITCODE = 0
    $line = $args -join ' '
    if ($line -match '^(add|delete|change) ' -and -not $f.Elevated) {
        $global:LASTEXITCODE = 1
        return 'The requested operation requires elevation.'
    }
    switch -Regex ($line) {
        '^print -4' {
            '==========================================================================='
            'Interface List'
            ' 22...00 15 5d 3a 8b 41 ......Hyper-V Virtual Ethernet Adapter #2'
            '  1...........................Software Loopback Interface 1'
            '==========================================================================='
            ''
            'IPv4 Route Table'
            '==========================================================================='
            'Active Routes:'
            'Network Destination        Netmask          Gateway       Interface  Metric'
            if ($f.Gateway) { '          0.0.0.0          0.0.0.0      {0,11}     {1}   5256' -f $f.Gateway, $f.Address }
            '        127.0.0.0        255.0.0.0         On-link         127.0.0.1    331'
            '        127.0.0.1  255.255.255.255         On-link         127.0.0.1    331'
            # Windows adds an On-link host route for every further address on the interface (the metadata address).
            foreach ($a in @($f.Addresses | Where-Object { $_ -ne $f.Address })) { '  {0,15}  255.255.255.255         On-link  {0,15}   5256' -f $a }
            foreach ($r in $f.Routes) { '  {0,15}  {1,15}      {2,11}     {3}   5257' -f $r.Destination, $r.Netmask, $r.Gateway, $f.Address }
            '==========================================================================='
            'Persistent Routes:'
            '  None'
            ''
            'IPv6 Route Table'
            '==========================================================================='
            'Active Routes:'
            ' If Metric Network Destination      Gateway'
            '  1    331 ::1/128                  On-link'
            '==========================================================================='
            return
        }
        '^add (?<d>\S+) mask (?<m>\S+) (?<g>\S+)$' {
            if (@($f.Routes | Where-Object { $_.Destination -eq $Matches.d }).Count -gt 0) {
                $global:LASTEXITCODE = 1; return 'The route addition failed: The object already exists.'
            }
            $f.Routes.Add([pscustomobject]@{ Destination = $Matches.d; Netmask = $Matches.m; Gateway = $Matches.g })
            return ' OK!'
        }
        '^delete (?<d>\S+)( mask (?<m>\S+))?( (?<g>\S+))?$' {
            $d = $Matches.d; $g = $Matches['g']
            $gone = @($f.Routes | Where-Object { $_.Destination -eq $d -and (-not $g -or $_.Gateway -eq $g) })
            if ($gone.Count -eq 0) { $global:LASTEXITCODE = 1; return 'The route deletion failed: Element not found.' }
            foreach ($r in $gone) { [void]$f.Routes.Remove($r) }
            return ' OK!'
        }
        default { $global:LASTEXITCODE = 1; 'The syntax of this command is: ROUTE [-f] [-p] [-4|-6] command ...' }
    }
}
