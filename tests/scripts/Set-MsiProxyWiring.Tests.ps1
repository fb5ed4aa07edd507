BeforeAll {
    $script:ScriptsDir = Join-Path $PSScriptRoot '../../docker/scripts'
    $script:SetWiring = Join-Path $ScriptsDir 'Set-MsiProxyWiring.ps1'
    Import-Module (Join-Path $ScriptsDir 'MsiProxyWiring.psm1') -Force
    . (Join-Path $PSScriptRoot 'FakeWindowsContainer.ps1')

    # Runs the script the way `docker exec ... -File` does and returns its parsed JSON line and exit code.
    function Invoke-SetWiring {
        $out = @(& $script:SetWiring @args 2>$null)
        $code = $LASTEXITCODE
        [pscustomobject]@{ ExitCode = $code; Lines = $out; Json = ($out | Select-Object -Last 1 | ConvertFrom-Json) }
    }
    function New-Rule([string] $ConnectAddress, [int] $ConnectPort = 80) {
        [pscustomobject]@{ ListenAddress = '169.254.169.254'; ListenPort = 80; ConnectAddress = $ConnectAddress; ConnectPort = $ConnectPort }
    }
}

Describe 'Set-MsiProxyWiring.ps1 on a Nano Server container (netsh only)' {
    BeforeEach {
        Mock netsh -ModuleName MsiProxyWiring { Invoke-FakeNetsh @args }
        Mock route -ModuleName MsiProxyWiring { Invoke-FakeRoute @args }
    }

    It 'issues exactly the read, add-address and add-portproxy commands for a fresh container' {
        New-FakeContainer | Out-Null
        $r = Invoke-SetWiring -ProxyAddress 172.28.16.5 -ProxyPort 8080
        $r.ExitCode | Should -Be 0
        $global:Fake.Calls | Should -Be @(
            'netsh interface ipv4 show addresses'
            'netsh interface portproxy show v4tov4'
            'route print -4'
            'netsh interface ipv4 add address "vEthernet (Ethernet)" 169.254.169.254 255.255.255.255'
            'netsh interface portproxy add v4tov4 listenaddress=169.254.169.254 listenport=80 connectaddress=172.28.16.5 connectport=8080'
        )
    }

    It 'first deletes a route to the metadata address through the gateway, which would lead past the proxy' {
        New-FakeContainer | Out-Null
        $global:Fake.Routes.Add([pscustomobject]@{ Destination = '169.254.169.254'; Netmask = '255.255.255.255'; Gateway = '172.28.16.1' })
        $r = Invoke-SetWiring -ProxyAddress 172.28.16.5
        $r.ExitCode | Should -Be 0
        $r.Json.changes | Should -Be @('route-removed', 'address', 'portproxy')
        Get-FakeChangingCalls | Should -Be @(
            'route delete 169.254.169.254 mask 255.255.255.255 172.28.16.1'
            'netsh interface ipv4 add address "vEthernet (Ethernet)" 169.254.169.254 255.255.255.255'
            'netsh interface portproxy add v4tov4 listenaddress=169.254.169.254 listenport=80 connectaddress=172.28.16.5 connectport=80'
        )
        $global:Fake.Routes.Count | Should -Be 0
    }

    It 'leaves the On-link route of its own metadata address alone' {
        New-FakeContainer -ExtraAddresses '169.254.169.254' -Rules (New-Rule '172.28.16.5') | Out-Null
        (Invoke-FakeRoute print -4) -join "`n" | Should -Match '169\.254\.169\.254\s+255\.255\.255\.255\s+On-link'
        $global:Fake.Calls.Clear()
        $r = Invoke-SetWiring -ProxyAddress 172.28.16.5
        $r.Json.action | Should -Be 'unchanged'
        Get-FakeChangingCalls | Should -BeNullOrEmpty
    }

    It 'fails with exit 4 when route delete claims success but the route stays' {
        New-FakeContainer | Out-Null
        $global:Fake.Routes.Add([pscustomobject]@{ Destination = '169.254.169.254'; Netmask = '255.255.255.255'; Gateway = '172.28.16.1' })
        Mock route -ModuleName MsiProxyWiring -ParameterFilter { $args[0] -eq 'delete' } { $global:LASTEXITCODE = 0; ' OK!' }
        $r = Invoke-SetWiring -ProxyAddress 172.28.16.5
        $r.ExitCode | Should -Be 4
        $r.Json.error_description | Should -Match 'still in .route print.'
        # Nothing was wired on top of a container that still has its way around the proxy.
        $global:Fake.Addresses | Should -Not -Contain '169.254.169.254'
    }

    It 'reports a route it may not delete (not elevated) as exit 3' {
        New-FakeContainer -Elevated $false | Out-Null
        $global:Fake.Routes.Add([pscustomobject]@{ Destination = '169.254.169.254'; Netmask = '255.255.255.255'; Gateway = '172.28.16.1' })
        $r = Invoke-SetWiring -ProxyAddress 172.28.16.5
        $r.ExitCode | Should -Be 3
        $global:Fake.Routes.Count | Should -Be 1
    }

    It 'reports one JSON line the monitor can parse' {
        New-FakeContainer | Out-Null
        $r = Invoke-SetWiring -ProxyAddress 172.28.16.5
        $r.Lines.Count | Should -Be 1
        $r.Json.action | Should -Be 'wired'
        $r.Json.proxy | Should -Be '172.28.16.5'
        $r.Json.port | Should -Be 80
        $r.Json.interface | Should -Be 'vEthernet (Ethernet)'
        $r.Json.changes | Should -Be @('address', 'portproxy')
    }

    It 'issues no add command on a second run and reports unchanged' {
        New-FakeContainer | Out-Null
        (Invoke-SetWiring -ProxyAddress 172.28.16.5).ExitCode | Should -Be 0
        $global:Fake.Calls.Clear()
        $r = Invoke-SetWiring -ProxyAddress 172.28.16.5
        $r.ExitCode | Should -Be 0
        $r.Json.action | Should -Be 'unchanged'
        Get-FakeChangingCalls | Should -BeNullOrEmpty
        $global:Fake.Calls.Count | Should -Be 3
    }

    It 'leaves an already wired container alone when the show output already has the rule' {
        New-FakeContainer -ExtraAddresses '169.254.169.254' -Rules (New-Rule '172.28.16.5') | Out-Null
        $r = Invoke-SetWiring -ProxyAddress 172.28.16.5
        $r.Json.action | Should -Be 'unchanged'
        Get-FakeChangingCalls | Should -BeNullOrEmpty
    }

    It 'adds only the portproxy rule when the address survived but the rule was lost (container restart)' {
        New-FakeContainer -ExtraAddresses '169.254.169.254' | Out-Null
        $r = Invoke-SetWiring -ProxyAddress 172.28.16.5
        $r.Json.changes | Should -Be @('portproxy')
        Get-FakeChangingCalls | Should -Be @('netsh interface portproxy add v4tov4 listenaddress=169.254.169.254 listenport=80 connectaddress=172.28.16.5 connectport=80')
    }

    It 'replaces a stale rule that points at an old proxy address' {
        New-FakeContainer -ExtraAddresses '169.254.169.254' -Rules (New-Rule '172.28.16.9') | Out-Null
        $r = Invoke-SetWiring -ProxyAddress 172.28.16.5
        $r.ExitCode | Should -Be 0
        Get-FakeChangingCalls | Should -Be @(
            'netsh interface portproxy delete v4tov4 listenaddress=169.254.169.254 listenport=80'
            'netsh interface portproxy add v4tov4 listenaddress=169.254.169.254 listenport=80 connectaddress=172.28.16.5 connectport=80'
        )
        $global:Fake.Rules.ConnectAddress | Should -Be @('172.28.16.5')
        $r.Json.changes | Should -Contain 'portproxy-replaced'
    }

    It 'replaces a rule whose proxy port changed' {
        New-FakeContainer -ExtraAddresses '169.254.169.254' -Rules (New-Rule '172.28.16.5' 80) | Out-Null
        (Invoke-SetWiring -ProxyAddress 172.28.16.5 -ProxyPort 8080).Json.action | Should -Be 'wired'
        $global:Fake.Rules[0].ConnectPort | Should -Be 8080
    }

    It 'uses the interface named by -InterfaceAlias' {
        New-FakeContainer -Alias 'Ethernet 2' | Out-Null
        (Invoke-SetWiring -ProxyAddress 10.0.0.4 -InterfaceAlias 'Ethernet 2').ExitCode | Should -Be 0
        Get-FakeChangingCalls | Should -Contain 'netsh interface ipv4 add address "Ethernet 2" 169.254.169.254 255.255.255.255'
    }

    It 'fails with exit 3 and no change when -InterfaceAlias does not exist' {
        New-FakeContainer | Out-Null
        $r = Invoke-SetWiring -ProxyAddress 10.0.0.4 -InterfaceAlias 'Ethernet 9'
        $r.ExitCode | Should -Be 3
        $r.Json.error | Should -Be 'prerequisite_missing'
        $r.Json.error_description | Should -Match "Ethernet 9.*vEthernet \(Ethernet\)"
        Get-FakeChangingCalls | Should -BeNullOrEmpty
    }

    It '-Remove deletes the rule and the address' {
        New-FakeContainer -ExtraAddresses '169.254.169.254' -Rules (New-Rule '172.28.16.5') | Out-Null
        $r = Invoke-SetWiring -Remove
        $r.ExitCode | Should -Be 0
        $r.Json.action | Should -Be 'removed'
        $r.Json.proxy | Should -Be '172.28.16.5'
        Get-FakeChangingCalls | Should -Be @(
            'netsh interface portproxy delete v4tov4 listenaddress=169.254.169.254 listenport=80'
            'netsh interface ipv4 delete address "vEthernet (Ethernet)" 169.254.169.254'
        )
        $global:Fake.Addresses | Should -Not -Contain '169.254.169.254'
        $global:Fake.Rules.Count | Should -Be 0
    }

    It '-Remove on an unwired container changes nothing and reports unchanged' {
        New-FakeContainer | Out-Null
        $r = Invoke-SetWiring -Remove
        $r.ExitCode | Should -Be 0
        $r.Json.action | Should -Be 'unchanged'
        Get-FakeChangingCalls | Should -BeNullOrEmpty
    }

    It '-WhatIf reads state but issues no change' {
        New-FakeContainer -Rules (New-Rule '172.28.16.9') | Out-Null
        $global:Fake.Routes.Add([pscustomobject]@{ Destination = '169.254.169.254'; Netmask = '255.255.255.255'; Gateway = '172.28.16.1' })
        $r = Invoke-SetWiring -ProxyAddress 172.28.16.5 -WhatIf
        $r.ExitCode | Should -Be 0
        $r.Json.whatIf | Should -BeTrue
        $r.Json.changes | Should -Be @('route-removed', 'address', 'portproxy-replaced', 'portproxy')
        Get-FakeChangingCalls | Should -BeNullOrEmpty
        $global:Fake.Calls.Count | Should -Be 3
    }

    It 'reports a missing elevation as exit 3 with the ContainerAdministrator hint' {
        New-FakeContainer -Elevated $false | Out-Null
        $r = Invoke-SetWiring -ProxyAddress 172.28.16.5
        $r.ExitCode | Should -Be 3
        $r.Json.action | Should -Be 'error'
        $r.Json.error_description | Should -Match 'ContainerAdministrator'
    }

    It 'reports a failing netsh command as exit 4' {
        New-FakeContainer | Out-Null
        Mock netsh -ModuleName MsiProxyWiring -ParameterFilter { $args -contains 'add' -and $args -contains 'v4tov4' } {
            $global:Fake.Calls.Add('netsh portproxy add (failing)')
            $global:LASTEXITCODE = 1
            'The parameter is incorrect.'
        }
        $r = Invoke-SetWiring -ProxyAddress 172.28.16.5
        $r.ExitCode | Should -Be 4
        $r.Json.error | Should -Be 'command_failed'
        $r.Json.error_description | Should -Match 'parameter is incorrect'
    }
}

Describe 'Set-MsiProxyWiring.ps1 input validation' {
    BeforeEach {
        New-FakeContainer | Out-Null
        Mock netsh -ModuleName MsiProxyWiring { Invoke-FakeNetsh @args }
    }

    It 'rejects <Case> with exit 2 and runs no command' -ForEach @(
        @{ Case = 'a bad IP'; Arguments = @{ ProxyAddress = '172.28.16.256' } }
        @{ Case = 'a host name'; Arguments = @{ ProxyAddress = 'msiproxy' } }
        @{ Case = 'a short address'; Arguments = @{ ProxyAddress = '10.1' } }
        @{ Case = 'the metadata address as proxy'; Arguments = @{ ProxyAddress = '169.254.169.254' } }
        @{ Case = 'port 0'; Arguments = @{ ProxyAddress = '172.28.16.5'; ProxyPort = 0 } }
        @{ Case = 'port 70000'; Arguments = @{ ProxyAddress = '172.28.16.5'; ProxyPort = 70000 } }
        @{ Case = 'a missing ProxyAddress'; Arguments = @{ ProxyPort = 8080 } }
        @{ Case = 'a bad MetadataAddress'; Arguments = @{ ProxyAddress = '172.28.16.5'; MetadataAddress = '169.254.169' } }
    ) {
        $r = Invoke-SetWiring @Arguments
        $r.ExitCode | Should -Be 2
        $r.Json.action | Should -Be 'error'
        $r.Json.error | Should -Be 'invalid_input'
        $r.Json.error_description | Should -Not -BeNullOrEmpty
        $global:Fake.Calls | Should -BeNullOrEmpty
    }
}

Describe 'Set-MsiProxyWiring.ps1 on Server Core (NetTCPIP module present)' {
    BeforeAll {
        # Linux pwsh has no NetTCPIP; these stand-ins make the cmdlets exist so detection finds them.
        function global:New-NetIPAddress { param($InterfaceAlias, $IPAddress, $PrefixLength, $SkipAsSource) }
        function global:Remove-NetIPAddress { param($InterfaceAlias, $IPAddress, [switch] $Confirm) }
    }
    AfterAll {
        # A provider path takes no scope prefix: function:global:X names nothing and removed nothing, and the
        # stand-ins leaked into later test files (which then took the NetTCPIP path).
        Remove-Item function:New-NetIPAddress, function:Remove-NetIPAddress
    }
    BeforeEach {
        Mock netsh -ModuleName MsiProxyWiring { Invoke-FakeNetsh @args }
        Mock route -ModuleName MsiProxyWiring { Invoke-FakeRoute @args }
        Mock New-NetIPAddress { }
        Mock Remove-NetIPAddress { }
    }

    It 'adds the address with New-NetIPAddress /32 SkipAsSource instead of netsh' {
        New-FakeContainer | Out-Null
        (Invoke-SetWiring -ProxyAddress 172.28.16.5).ExitCode | Should -Be 0
        Should -Invoke New-NetIPAddress -Times 1 -Exactly -ParameterFilter {
            $InterfaceAlias -eq 'vEthernet (Ethernet)' -and $IPAddress -eq '169.254.169.254' -and $PrefixLength -eq 32 -and $SkipAsSource -eq $true
        }
        Get-FakeChangingCalls | Should -Be @('netsh interface portproxy add v4tov4 listenaddress=169.254.169.254 listenport=80 connectaddress=172.28.16.5 connectport=80')
    }

    It '-Remove uses Remove-NetIPAddress for the address' {
        New-FakeContainer -ExtraAddresses '169.254.169.254' | Out-Null
        (Invoke-SetWiring -Remove).Json.action | Should -Be 'removed'
        Should -Invoke Remove-NetIPAddress -Times 1 -Exactly -ParameterFilter { $IPAddress -eq '169.254.169.254' }
        Get-FakeChangingCalls | Should -BeNullOrEmpty
    }
}
