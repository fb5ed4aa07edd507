BeforeAll {
    $script:GetWiring = Join-Path $PSScriptRoot '../../docker/scripts/Get-MsiProxyWiring.ps1'
    $script:SetWiring = Join-Path $PSScriptRoot '../../docker/scripts/Set-MsiProxyWiring.ps1'
    Import-Module (Join-Path $PSScriptRoot '../../docker/scripts/MsiProxyWiring.psm1') -Force
    . (Join-Path $PSScriptRoot 'FakeWindowsContainer.ps1')
    function Invoke-GetWiring {
        $out = @(& $script:GetWiring @args 2>$null)
        [pscustomobject]@{ ExitCode = $LASTEXITCODE; Lines = $out; Json = ($out | Select-Object -Last 1 | ConvertFrom-Json) }
    }
}

Describe 'Get-MsiProxyWiring.ps1' {
    BeforeEach {
        New-FakeContainer | Out-Null
        Mock netsh -ModuleName MsiProxyWiring { Invoke-FakeNetsh @args }
        Mock route -ModuleName MsiProxyWiring { Invoke-FakeRoute @args }
    }

    It 'reports an unwired container in one JSON line without changing anything' {
        $r = Invoke-GetWiring
        $r.ExitCode | Should -Be 0
        $r.Lines.Count | Should -Be 1
        $r.Json.address.present | Should -BeFalse
        @($r.Json.portproxy).Count | Should -Be 0
        $r.Json.clientWired | Should -BeFalse
        $r.Json.route.present | Should -BeFalse
        $r.Json.defaultGateway | Should -Be '172.28.16.1'
        Get-FakeChangingCalls | Should -BeNullOrEmpty
    }

    It 'sees what Set-MsiProxyWiring.ps1 wired and compares it with the expected proxy' {
        & $script:SetWiring -ProxyAddress 172.28.16.5 -ProxyPort 8080 | Out-Null
        $r = Invoke-GetWiring -ProxyAddress 172.28.16.5 -ProxyPort 8080
        $r.Json.clientWired | Should -BeTrue
        $r.Json.address.interface | Should -Be 'vEthernet (Ethernet)'
        $r.Json.portproxy[0].connectAddress | Should -Be '172.28.16.5'
        $r.Json.matchesExpected | Should -BeTrue
        # The On-link route Windows adds for the local metadata address is not a way out.
        $r.Json.route.present | Should -BeFalse
        $r.Json.clientIsolated | Should -BeTrue
        (Invoke-GetWiring -ProxyAddress 172.28.16.9).Json.matchesExpected | Should -BeFalse
    }

    It 'reports a wired client that also has a route through its gateway as not isolated' {
        & $script:SetWiring -ProxyAddress 172.28.16.5 | Out-Null
        $global:Fake.Routes.Add([pscustomobject]@{ Destination = '169.254.169.254'; Netmask = '255.255.255.255'; Gateway = '172.28.16.1' })
        $r = Invoke-GetWiring
        $r.Json.clientWired | Should -BeTrue
        $r.Json.route.present | Should -BeTrue
        $r.Json.clientIsolated | Should -BeFalse
    }

    It 'reports the metadata route of an msiserviceclient container' {
        $global:Fake.Routes.Add([pscustomobject]@{ Destination = '169.254.169.254'; Netmask = '255.255.255.255'; Gateway = '172.28.16.1' })
        $r = Invoke-GetWiring
        $r.Json.route.present | Should -BeTrue
        $r.Json.route.gateway | Should -Be '172.28.16.1'
    }

    It 'rejects a bad expected proxy address with exit 2' {
        $r = Invoke-GetWiring -ProxyAddress 'not-an-ip'
        $r.ExitCode | Should -Be 2
        $global:Fake.Calls | Should -BeNullOrEmpty
    }
}
