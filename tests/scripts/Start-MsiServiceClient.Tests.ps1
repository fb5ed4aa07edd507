BeforeAll {
    $script:ScriptsDir = Join-Path $PSScriptRoot '../../docker/scripts'
    $script:StartScript = Join-Path $ScriptsDir 'Start-MsiServiceClient.ps1'
    $script:Fixtures = Join-Path $PSScriptRoot 'fixtures'
    Import-Module (Join-Path $ScriptsDir 'MsiProxyWiring.psm1') -Force
    . (Join-Path $PSScriptRoot 'FakeWindowsContainer.ps1')

    function Invoke-Start {
        $out = @(& $script:StartScript @args 2>$null)
        [pscustomobject]@{ ExitCode = $LASTEXITCODE; Lines = $out; Json = ($out | Where-Object { $_ -like '{*' } | Select-Object -First 1 | ConvertFrom-Json) }
    }
    function Read-Fixture([string] $Name) { Get-Content -LiteralPath (Join-Path $script:Fixtures $Name) }
}

Describe 'Gateway and route parsing from real-looking Windows container output' {
    It 'reads the default gateway from route print of a NAT container' {
        $routes = ConvertFrom-RoutePrint (Read-Fixture 'route-print-nat.txt')
        Get-DefaultGatewayFromRoutes $routes | Should -Be '172.28.16.1'
        $routes.Count | Should -Be 11
        Find-GatewayRoute $routes '169.254.169.254' | Should -BeNullOrEmpty
    }

    It 'picks the lowest-metric default route, ignores persistent routes and finds the metadata route' {
        $routes = ConvertFrom-RoutePrint (Read-Fixture 'route-print-with-metadata-route.txt')
        Get-DefaultGatewayFromRoutes $routes | Should -Be '172.28.16.1'
        ($routes | Where-Object Persistent).Gateway | Should -Be '192.168.9.1'
        (Find-GatewayRoute $routes '169.254.169.254').Gateway | Should -Be '172.28.16.1'
    }

    It 'finds no gateway when route print has no default route' {
        Get-DefaultGatewayFromRoutes (ConvertFrom-RoutePrint (Read-Fixture 'route-print-no-default.txt')) | Should -BeNullOrEmpty
    }

    It 'reads the IPv4 gateway from the continuation line after an IPv6 gateway in ipconfig' {
        ConvertFrom-Ipconfig (Read-Fixture 'ipconfig-nat.txt') | Should -Be @('172.28.16.1')
    }

    It 'finds no gateway in ipconfig when Default Gateway is empty' {
        ConvertFrom-Ipconfig (Read-Fixture 'ipconfig-no-gateway.txt') | Should -BeNullOrEmpty
    }

    It 'parses netsh show addresses into interfaces with addresses and gateway' {
        $interfaces = ConvertFrom-NetshAddress (Read-Fixture 'netsh-show-addresses.txt')
        $interfaces.Name | Should -Be @('vEthernet (Ethernet)', 'Loopback Pseudo-Interface 1')
        $interfaces[0].Addresses | Should -Be @('172.28.20.14', '169.254.169.254')
        $interfaces[0].DefaultGateway | Should -Be '172.28.16.1'
        $interfaces[1].DefaultGateway | Should -BeNullOrEmpty
    }

    It 'parses netsh portproxy show v4tov4 rules' {
        $rules = ConvertFrom-NetshPortProxy (Read-Fixture 'netsh-portproxy-show.txt')
        $rules.Count | Should -Be 2
        $rules[0].ListenAddress | Should -Be '169.254.169.254'
        $rules[0].ConnectAddress | Should -Be '172.28.16.5'
        $rules[0].ConnectPort | Should -Be 8080
    }
}

Describe 'Start-MsiServiceClient.ps1' {
    BeforeEach {
        New-FakeContainer | Out-Null
        $script:ProxyDll = Join-Path $TestDrive 'MsiProxy.dll'
        Set-Content -LiteralPath $ProxyDll -Value 'not a real assembly'
        Mock route -ModuleName MsiProxyWiring { Invoke-FakeRoute @args }
        Mock ipconfig -ModuleName MsiProxyWiring { $global:Fake.Calls.Add('ipconfig'); Get-Content (Join-Path $PSScriptRoot 'fixtures/ipconfig-nat.txt') }
        Mock dotnet { $global:Fake.Calls.Add('dotnet ' + ($args -join ' ')); $global:LASTEXITCODE = 0; 'proxy started' }
    }

    It 'adds the route via the gateway from route print, then starts MsiProxy with the pass-through arguments' {
        $r = Invoke-Start -ProxyPath $ProxyDll -- --urls 'http://+:80'
        $r.ExitCode | Should -Be 0
        $global:Fake.Calls | Should -Be @(
            'route print -4'
            'route add 169.254.169.254 mask 255.255.255.255 172.28.16.1'
            'route print -4'
            "dotnet $ProxyDll --urls http://+:80"
        )
        $r.Json.action | Should -Be 'route-added'
        $r.Json.gateway | Should -Be '172.28.16.1'
        $r.Lines | Should -Contain 'proxy started'
    }

    It 'does not add the route again when it is already there' {
        $global:Fake.Routes.Add([pscustomobject]@{ Destination = '169.254.169.254'; Netmask = '255.255.255.255'; Gateway = '172.28.16.1' })
        $r = Invoke-Start -ProxyPath $ProxyDll
        $r.Json.action | Should -Be 'route-present'
        Get-FakeChangingCalls | Should -BeNullOrEmpty
        Should -Invoke dotnet -Times 1 -Exactly
    }

    It 'falls back to ipconfig when route print has no default route' {
        $global:Fake.Gateway = $null
        $r = Invoke-Start -ProxyPath $ProxyDll
        $r.ExitCode | Should -Be 0
        $global:Fake.Calls | Should -Contain 'ipconfig'
        Get-FakeChangingCalls | Should -Be @('route add 169.254.169.254 mask 255.255.255.255 172.28.16.1')
    }

    It 'uses Get-NetRoute when the NetTCPIP module exists' {
        function global:Get-NetRoute { param($DestinationPrefix, $AddressFamily) }
        try {
            Mock Get-NetRoute -ModuleName MsiProxyWiring { [pscustomobject]@{ NextHop = '10.240.0.1'; RouteMetric = 0 } }
            (Invoke-Start -ProxyPath $ProxyDll).Json.gateway | Should -Be '10.240.0.1'
            Get-FakeChangingCalls | Should -Be @('route add 169.254.169.254 mask 255.255.255.255 10.240.0.1')
        } finally { Remove-Item function:Get-NetRoute }
    }

    It 'fails with exit 3, a clear error and no proxy start when no gateway is found' {
        $global:Fake.Gateway = $null
        Mock ipconfig -ModuleName MsiProxyWiring { Get-Content (Join-Path $PSScriptRoot 'fixtures/ipconfig-no-gateway.txt') }
        $r = Invoke-Start -ProxyPath $ProxyDll
        $r.ExitCode | Should -Be 3
        $r.Json.error_description | Should -Match 'No IPv4 default gateway'
        Get-FakeChangingCalls | Should -BeNullOrEmpty
        Should -Invoke dotnet -Times 0 -Exactly
    }

    It 'fails with exit 4 when route add claims success but the route does not appear' {
        Mock route -ModuleName MsiProxyWiring -ParameterFilter { $args[0] -eq 'add' } { $global:LASTEXITCODE = 0; ' OK!' }
        $r = Invoke-Start -ProxyPath $ProxyDll
        $r.ExitCode | Should -Be 4
        Should -Invoke dotnet -Times 0 -Exactly
    }

    It 'reports missing elevation as exit 3' {
        $global:Fake.Elevated = $false
        $r = Invoke-Start -ProxyPath $ProxyDll
        $r.ExitCode | Should -Be 3
        $r.Json.error_description | Should -Match 'ContainerAdministrator'
    }

    It 'fails with exit 3 before touching routes when MsiProxy is missing' {
        $r = Invoke-Start -ProxyPath (Join-Path $TestDrive 'missing/MsiProxy.dll')
        $r.ExitCode | Should -Be 3
        $global:Fake.Calls | Should -BeNullOrEmpty
    }

    It 'uses -Gateway and rejects a bad one' {
        (Invoke-Start -ProxyPath $ProxyDll -Gateway 10.1.2.3).Json.gateway | Should -Be '10.1.2.3'
        $bad = Invoke-Start -ProxyPath $ProxyDll -Gateway 10.1.2
        $bad.ExitCode | Should -Be 2
    }

    It '-WhatIf adds no route and starts nothing' {
        $r = Invoke-Start -ProxyPath $ProxyDll -WhatIf
        $r.ExitCode | Should -Be 0
        Get-FakeChangingCalls | Should -BeNullOrEmpty
        Should -Invoke dotnet -Times 0 -Exactly
    }
}

Describe 'Start-MsiServiceClient.ps1 as a real pwsh process' -Tag 'Process' {
    It 'runs in its own pwsh, starts an .exe MsiProxy with the arguments after -- and returns its exit code' {
        # Real executables stand in for route.exe and MsiProxy.exe, found through PATH like on Windows.
        $bin = Join-Path $TestDrive 'bin'
        New-Item -ItemType Directory -Path $bin | Out-Null
        $routeLog = Join-Path $TestDrive 'route.log'
        $fixture = Join-Path $PSScriptRoot 'fixtures/route-print-nat.txt'
        $added = Join-Path $TestDrive 'added'
        Set-Content -LiteralPath (Join-Path $bin 'route') -Value @(
            '#!/bin/sh'
            "echo `"`$*`" >> '$routeLog'"
            "if [ `"`$1`" = add ]; then touch '$added'; echo ' OK!'; exit 0; fi"
            "if [ -f '$added' ]; then sed 's/^        127.0.0.0 /  169.254.169.254  255.255.255.255      172.28.16.1     172.28.20.14   5257\n        127.0.0.0 /' '$fixture'; else cat '$fixture'; fi"
        )
        $exe = Join-Path $TestDrive 'MsiProxy.exe'
        $argsLog = Join-Path $TestDrive 'proxy-args.log'
        Set-Content -LiteralPath $exe -Value @('#!/bin/sh', "printf '%s\n' `"`$@`" > '$argsLog'", 'echo proxy-running', 'exit 7')
        chmod +x (Join-Path $bin 'route') $exe

        $pwsh = (Get-Command pwsh -CommandType Application | Select-Object -First 1).Source
        $env:PATH = "$bin$([IO.Path]::PathSeparator)$env:PATH"
        try {
            # -Command, as in the image's ENTRYPOINT: under -File pwsh does not treat `--` as end of parameters.
            $out = & $pwsh -NoProfile -NonInteractive -Command "& '$($script:StartScript)' -ProxyPath '$exe' -- --urls 'http://+:80'; exit `$LASTEXITCODE" 2>&1
            $code = $LASTEXITCODE
        } finally { $env:PATH = $env:PATH.Substring($bin.Length + 1) }

        $code | Should -Be 7 -Because ($out -join "`n")
        $out | Should -Contain 'proxy-running'
        ($out | Where-Object { $_ -like '{*' } | ConvertFrom-Json).action | Should -Be 'route-added'
        Get-Content $routeLog | Should -Be @('print -4', 'add 169.254.169.254 mask 255.255.255.255 172.28.16.1', 'print -4')
        Get-Content $argsLog | Should -Be @('--urls', 'http://+:80')
    }
}
