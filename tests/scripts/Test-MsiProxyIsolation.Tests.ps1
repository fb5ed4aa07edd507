BeforeAll {
    $script:TestIsolation = Join-Path $PSScriptRoot '../../docker/scripts/Test-MsiProxyIsolation.ps1'
    $script:HostFirewall = Join-Path $PSScriptRoot '../../docker/scripts/Set-MsiProxyHostFirewall.ps1'
    Import-Module (Join-Path $PSScriptRoot '../../docker/scripts/MsiProxyWiring.psm1') -Force
    . (Join-Path $PSScriptRoot 'FakeWindowsContainer.ps1')
    . (Join-Path $PSScriptRoot 'FakeDockerHost.ps1')

    # Runs the script as an operator would and splits its JSON lines into checks, the summary and an error line.
    function Invoke-IsolationTest {
        $out = @(& $script:TestIsolation @args 2>$null)
        $code = $LASTEXITCODE
        $json = @($out | Where-Object { $_ -like '{*' } | ForEach-Object { $_ | ConvertFrom-Json })
        [pscustomobject]@{
            ExitCode = $code
            Lines = $out
            Checks = @($json | Where-Object { $_.PSObject.Properties['Path'] })
            Summary = $json | Where-Object { $_.PSObject.Properties['result'] } | Select-Object -Last 1
            Error = $json | Where-Object { $_.PSObject.Properties['action'] } | Select-Object -First 1
        }
    }
    function Get-Check([object] $Run, [string] $Container, [string] $Path) {
        @($Run.Checks | Where-Object { $_.Container -like "$Container *" -and $_.Path -match $Path })
    }
    function Get-ProbeContainers { @($global:DockerHost.Containers | Where-Object { $_.Labels.ContainsKey('msi-proxy.isolation-probe') }) }
    function Get-ProbeNames { @($global:DockerHost.Calls | ForEach-Object { if ($_ -match '--name (msi-proxy-probe-\S+)') { $Matches[1] } }) }
    function Set-HostFirewall { & $script:HostFirewall *> $null; $LASTEXITCODE | Should -Be 0 }
}

Describe 'Test-MsiProxyIsolation.ps1 against a fake Windows Docker host' {
    BeforeEach {
        New-FakeDockerHost | Out-Null
        Mock docker -ModuleName MsiProxyWiring { Invoke-FakeDocker @args }
        Mock netsh -ModuleName MsiProxyWiring { if ($args[0] -eq 'advfirewall') { Invoke-FakeHostNetsh @args } else { Invoke-FakeNetsh @args } }
        Mock route -ModuleName MsiProxyWiring { Invoke-FakeRoute @args }
        Mock Start-Sleep { }
    }

    It 'passes every check on a host with the firewall rule, and IMDS hears nothing from either probe' {
        Set-HostFirewall
        $r = Invoke-IsolationTest -Json
        $r.ExitCode | Should -Be 0 -Because ($r.Lines -join "`n")
        $r.Summary.result | Should -Be 'PASS'
        $r.Checks.Count | Should -Be 9
        $r.Checks | ForEach-Object { $_.Result | Should -Be 'PASS' -Because "$($_.Container) / $($_.Path): $($_.Observed)" }
        (Get-Check $r 'unlabelled' '^IMDS directly').Observed | Should -Be 'no connection (curl exit 7)'
        (Get-Check $r 'unlabelled' '^the proxy directly').Observed | Should -Be 'HTTP 403, no token'
        (Get-Check $r 'unlabelled' '^the msiserviceclient directly').Observed | Should -Be 'HTTP 403, no token'
        (Get-Check $r 'labelled' '\(portproxy\)').Observed | Should -Be 'HTTP 200 with a token'

        $names = Get-ProbeNames
        $names.Count | Should -Be 2
        $global:DockerHost.ImdsRequests | Should -Not -Contain $names[0]
        $global:DockerHost.ImdsRequests | Should -Not -Contain $names[1]
        # The labelled probe's token came through the proxy, which saw the probe's own address.
        $labelledAddress = ((Get-Check $r 'labelled' 'wired').Container -replace '^.*\((.*)\)$', '$1')
        $global:DockerHost.ProxyRequests | Should -Contain $labelledAddress
        Get-ProbeContainers | Should -BeNullOrEmpty
    }

    It 'issues these docker commands, starts exactly one unlabelled and one labelled probe, and removes both' {
        Set-HostFirewall
        $global:DockerHost.Calls.Clear()
        (Invoke-IsolationTest -Json).ExitCode | Should -Be 0
        $calls = $global:DockerHost.Calls
        $calls[0] | Should -Be 'docker version --format {{.Server.Os}}'
        $calls[1] | Should -Be 'docker ps --filter label=msi-proxy.role=proxy --format {{.ID}}'
        $calls[2] | Should -Match '^docker inspect --format "\{\{json \.NetworkSettings\.Networks\}\}" [0-9a-f]{12}$'
        $calls[3] | Should -Be 'docker ps --filter label=msi-proxy.role=msiserviceclient --format {{.ID}}'
        $runs = @($calls | Where-Object { $_ -like 'docker run *' })
        $runs.Count | Should -Be 2
        $runs[0] | Should -Match '^docker run -d --name msi-proxy-probe-unlabelled-(?<id>[0-9a-f]{8}) --network msi-proxy_apps --label msi-proxy\.isolation-probe=\k<id> mcr\.microsoft\.com/windows/nanoserver:ltsc2022 cmd /c ping -t localhost$'
        $runs[1] | Should -Match '^docker run -d --name msi-proxy-probe-labelled-(?<id>[0-9a-f]{8}) --network msi-proxy_apps --label msi-proxy\.isolation-probe=\k<id> --label msi-proxy\.client=true --label msi-proxy\.name=isolation-probe-\k<id> --label msi-proxy\.identities=system mcr\.microsoft\.com/windows/nanoserver:ltsc2022 cmd /c ping -t localhost$'
        @($calls | Where-Object { $_ -like 'docker exec -u ContainerAdministrator *' }) | Should -Match ' route add 169\.254\.169\.254 mask 255\.255\.255\.255 172\.21\.198\.1$'
        $calls | Should -Contain ($calls | Where-Object { $_ -match '^docker rm -f [0-9a-f]{12} [0-9a-f]{12}$' } | Select-Object -First 1)
        $calls[-1] | Should -Match '^docker ps -a -q --filter label=msi-proxy\.isolation-probe=[0-9a-f]{8}$'
    }

    It 'FAILs with exit 1 when an elevated container can route itself to IMDS (no host firewall rule)' {
        $r = Invoke-IsolationTest -Json
        $r.ExitCode | Should -Be 1
        $r.Summary.result | Should -Be 'FAIL'
        $elevated = Get-Check $r 'unlabelled' 'own route'
        $elevated.Result | Should -Be 'FAIL'
        $elevated.Observed | Should -Be 'HTTP 200 with a token'
        $elevated.Detail | Should -Match 'Set-MsiProxyHostFirewall\.ps1'
        @($r.Checks | Where-Object Result -eq 'FAIL').Count | Should -Be 1
        # The fake IMDS really was reached, by the unlabelled probe, and never printed its token.
        $global:DockerHost.ImdsRequests | Should -Contain (Get-ProbeNames)[0]
        ($r.Lines -join "`n") | Should -Not -Match 'eyJ0eXAi'
        Get-ProbeContainers | Should -BeNullOrEmpty
    }

    It 'FAILs when an unlabelled container reaches IMDS with no route of its own' {
        $global:DockerHost.LinkLocalViaDefaultRoute = $true
        $r = Invoke-IsolationTest -Json -SkipElevatedProbe
        $r.ExitCode | Should -Be 1
        (Get-Check $r 'unlabelled' '^IMDS directly').Result | Should -Be 'FAIL'
        (Get-Check $r 'unlabelled' '^IMDS directly').Observed | Should -Be 'HTTP 200 with a token'
        # The wired container is unaffected: its metadata address is local.
        (Get-Check $r 'labelled' '\(portproxy\)').Result | Should -Be 'PASS'
        @($r.Checks | Where-Object Path -match 'own route') | Should -BeNullOrEmpty
    }

    It 'FAILs when the image carries its own route to IMDS, and the wiring removes that route from the labelled probe' {
        Set-HostFirewall
        $global:DockerHost.ImageRoutes['mcr.microsoft.com/windows/nanoserver:ltsc2022'] = '169.254.169.254'
        $r = Invoke-IsolationTest -Json
        $r.ExitCode | Should -Be 1
        (Get-Check $r 'unlabelled' '^route to').Observed | Should -Be 'via 172.21.198.1'
        (Get-Check $r 'unlabelled' '^route to').Result | Should -Be 'FAIL'
        # The firewall rule still stops the connection itself.
        (Get-Check $r 'unlabelled' '^IMDS directly').Result | Should -Be 'PASS'
        (Get-Check $r 'labelled' '^route to').Result | Should -Be 'PASS'
    }

    It 'FAILs when <Case>' -ForEach @(
        @{ Case = 'the proxy serves an unregistered caller'; Flag = 'ProxyAnswersUnregistered'; Container = 'unlabelled'; Path = '^the proxy directly' }
        @{ Case = 'the msiserviceclient serves anyone'; Flag = 'ServiceClientAdmitsAnyone'; Container = 'unlabelled'; Path = '^the msiserviceclient directly' }
    ) {
        Set-HostFirewall
        $global:DockerHost.$Flag = $true
        $r = Invoke-IsolationTest -Json
        $r.ExitCode | Should -Be 1
        $check = Get-Check $r $Container $Path
        $check.Result | Should -Be 'FAIL'
        $check.Observed | Should -Be 'HTTP 200 with a token'
    }

    It 'waits for the monitor a bounded number of polls, then FAILs the labelled path when it never wires' {
        Set-HostFirewall
        $global:DockerHost.MonitorRunning = $false
        $r = Invoke-IsolationTest -Json -WiringTimeoutSeconds 6
        $r.ExitCode | Should -Be 1
        (Get-Check $r 'labelled' 'wired').Observed | Should -Be 'not wired after 6 s'
        (Get-Check $r 'labelled' '\(portproxy\)').Result | Should -Be 'FAIL'
        (Get-Check $r 'labelled' '\(portproxy\)').Observed | Should -Be 'no connection (curl exit 7)'
        # Three polls, two pauses between them.
        @(Get-FakeDockerCalls 'portproxy show').Count | Should -Be 3
        Should -Invoke Start-Sleep -Times 2 -Exactly
        Get-ProbeContainers | Should -BeNullOrEmpty
    }

    It 'reports how long the monitor took to wire the labelled probe' {
        Set-HostFirewall
        $global:DockerHost.WiringDelayExecs = 2
        $r = Invoke-IsolationTest -Json
        (Get-Check $r 'labelled' 'wired').Observed | Should -Be 'portproxy to 172.21.198.10:80 after 4 s'
        Should -Invoke Start-Sleep -Times 2 -Exactly -ParameterFilter { $Seconds -eq 2 }
    }

    It 'expects a 403 from the proxy for a labelled probe without identities' {
        Set-HostFirewall
        $r = Invoke-IsolationTest -Json -Identities ''
        $r.ExitCode | Should -Be 0
        $check = Get-Check $r 'labelled' '\(portproxy\)'
        $check.Expected | Should -Be 'HTTP 403 from the proxy (no identity)'
        $check.Observed | Should -Be 'HTTP 403, no token'
    }

    It 'shows that the host firewall does not cover Hyper-V isolated containers' {
        Set-HostFirewall
        $r = Invoke-IsolationTest -Json -Isolation hyperv
        $r.ExitCode | Should -Be 1
        (Get-Check $r 'unlabelled' 'own route').Result | Should -Be 'FAIL'
        Get-FakeDockerCalls '^docker run ' | ForEach-Object { $_ | Should -Match ' --isolation=hyperv ' }
    }

    It 'prints one table and a closing line without -Json' {
        $out = @(& $script:TestIsolation 2>$null)
        $LASTEXITCODE | Should -Be 1
        $out[0] | Should -Match '^Container\s+Path\s+Expected\s+Observed\s+Result$'
        @($out | Where-Object { $_ -match '^(un)?labelled \(172\.21\.198\.\d+\)' }).Count | Should -Be 9
        $out[-1] | Should -Be 'isolation: BROKEN (1 of 9 checks failed)'
    }

    It 'stops with exit 3 and starts nothing when <Case>' -ForEach @(
        @{ Case = 'the engine runs Linux containers'; Arrange = { $global:DockerHost.ServerOs = 'linux' }; Message = "OS is 'linux'" }
        @{ Case = 'no proxy container runs'; Arrange = { $global:DockerHost.Containers.RemoveAt(0) }; Message = 'exactly one running container labelled' }
    ) {
        & $Arrange
        $r = Invoke-IsolationTest -Json
        $r.ExitCode | Should -Be 3
        $r.Error.error_description | Should -Match $Message
        Get-FakeDockerCalls '^docker run ' | Should -BeNullOrEmpty
    }

    It 'exits 4 and still removes both probes when the labelled one is created but fails to start' {
        $global:DockerHost.FailStartNamePattern = '^msi-proxy-probe-labelled-'
        $r = Invoke-IsolationTest -Json
        $r.ExitCode | Should -Be 4
        $r.Error.error_description | Should -Match 'HNS failed'
        # The half-created probe was found by its label and removed with the other one.
        @(Get-FakeDockerCalls '^docker rm -f ')[0] | Should -Match '^docker rm -f [0-9a-f]{12} [0-9a-f]{12}$'
        Get-ProbeContainers | Should -BeNullOrEmpty
    }

    It 'exits 4 with the leftover named when a probe cannot be removed' {
        Set-HostFirewall
        $global:DockerHost.RmFailsFor = 'unlabelled-'
        $r = Invoke-IsolationTest -Json
        $r.ExitCode | Should -Be 4
        $r.Summary.result | Should -Be 'PASS'
        $r.Error.error_description | Should -Match '^probe containers left behind: [0-9a-f]{12}; remove them with docker rm -f$'
        @(Get-ProbeContainers).Count | Should -Be 1
    }

    It 'rejects <Case> with exit 2 before calling docker' -ForEach @(
        @{ Case = 'port 0'; Arguments = @{ ProxyPort = 0 } }
        @{ Case = 'an unknown isolation'; Arguments = @{ Isolation = 'sandbox' } }
        @{ Case = 'a zero wiring timeout'; Arguments = @{ WiringTimeoutSeconds = 0 } }
        @{ Case = 'a bad metadata address'; Arguments = @{ MetadataAddress = '169.254.169' } }
    ) {
        $r = Invoke-IsolationTest -Json @Arguments
        $r.ExitCode | Should -Be 2
        $r.Error.error | Should -Be 'invalid_input'
        $global:DockerHost.Calls | Should -BeNullOrEmpty
    }
}
