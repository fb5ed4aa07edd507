BeforeAll {
    $script:InvokeWiring = Join-Path $PSScriptRoot '../../docker/scripts/Invoke-MsiProxyWiring.ps1'
    Import-Module (Join-Path $PSScriptRoot '../../docker/scripts/MsiProxyWiring.psm1') -Force
    . (Join-Path $PSScriptRoot 'FakeWindowsContainer.ps1')

    # A Docker host with an MsiProxy container, two labelled Windows clients (one with pwsh, one with
    # only Windows PowerShell) and one unlabelled container that must never be touched.
    function New-FakeDockerHost {
        $global:Docker = [pscustomobject]@{
            Calls = [System.Collections.Generic.List[string]]::new()
            Containers = @(
                [pscustomobject]@{ Id = 'a1proxy'; Labels = @{ 'msi-proxy.role' = 'proxy' }; Networks = '{"nat":{"IPAddress":"172.28.16.5"}}'; HasPwsh = $true; ExecExitCode = 0 }
                [pscustomobject]@{ Id = 'b2client'; Labels = @{ 'msi-proxy.client' = 'true' }; Networks = '{"nat":{"IPAddress":"172.28.20.14"}}'; HasPwsh = $true; ExecExitCode = 0 }
                [pscustomobject]@{ Id = 'c3client'; Labels = @{ 'msi-proxy.client' = 'true'; 'app' = 'legacy' }; Networks = '{"nat":{"IPAddress":"172.28.20.15"}}'; HasPwsh = $false; ExecExitCode = 0 }
                [pscustomobject]@{ Id = 'd4other'; Labels = @{ 'app' = 'web' }; Networks = '{"nat":{"IPAddress":"172.28.20.16"}}'; HasPwsh = $true; ExecExitCode = 0 }
            )
        }
    }

    function Invoke-FakeDocker {
        $d = $global:Docker
        $d.Calls.Add((Format-FakeCall 'docker' $args))
        $global:LASTEXITCODE = 0
        $a = @($args)
        switch ($a[0]) {
            'ps' {
                $label = ($a[[array]::IndexOf($a, '--filter') + 1]) -replace '^label=', ''
                $key, $value = $label -split '=', 2
                $d.Containers | Where-Object { $_.Labels.ContainsKey($key) -and $_.Labels[$key] -eq $value } | ForEach-Object { $_.Id }
            }
            'inspect' {
                $c = $d.Containers | Where-Object Id -eq $a[-1]
                if (-not $c) { $global:LASTEXITCODE = 1; return "Error: No such object: $($a[-1])" }
                $c.Networks
            }
            'exec' {
                if ($a -contains 'where') {
                    $c = $d.Containers | Where-Object Id -eq $a[1]
                    if ($c.HasPwsh) { 'C:\Program Files\PowerShell\pwsh.exe' } else { $global:LASTEXITCODE = 1; 'INFO: Could not find files for the given pattern(s).' }
                    return
                }
                $c = $d.Containers | Where-Object Id -eq $a[3]
                $global:LASTEXITCODE = $c.ExecExitCode
                if ($c.ExecExitCode -eq 0) { '{"action":"wired","proxy":"172.28.16.5","port":80}' }
                else { '{"action":"error","error":"prerequisite_missing","error_description":"requires elevation"}' }
            }
            default { $global:LASTEXITCODE = 1; "unknown docker command $($a[0])" }
        }
    }

    function Invoke-HostWiring {
        $out = @(& $script:InvokeWiring @args 2>$null)
        [pscustomobject]@{ ExitCode = $LASTEXITCODE; Lines = $out; Json = @($out | ForEach-Object { $_ | ConvertFrom-Json }) }
    }
    function Get-ExecCalls { @($global:Docker.Calls | Where-Object { $_ -like 'docker exec -u *' }) }
}

Describe 'Invoke-MsiProxyWiring.ps1 (host side)' {
    BeforeEach {
        New-FakeDockerHost
        Mock docker -ModuleName MsiProxyWiring { Invoke-FakeDocker @args }
    }

    It 'issues exactly these docker commands for two labelled clients and skips the unlabelled one' {
        $r = Invoke-HostWiring
        $r.ExitCode | Should -Be 0
        $global:Docker.Calls | Should -Be @(
            'docker ps --filter label=msi-proxy.role=proxy --format {{.ID}}'
            'docker inspect --format "{{json .NetworkSettings.Networks}}" a1proxy'
            'docker ps --filter label=msi-proxy.client=true --format {{.ID}}'
            'docker exec b2client cmd /c where pwsh'
            'docker exec -u ContainerAdministrator b2client pwsh -NoProfile -NonInteractive -File C:\msi-proxy\Set-MsiProxyWiring.ps1 -ProxyAddress 172.28.16.5 -ProxyPort 80'
            'docker exec c3client cmd /c where pwsh'
            'docker exec -u ContainerAdministrator c3client powershell -NoProfile -NonInteractive -File C:\msi-proxy\Set-MsiProxyWiring.ps1 -ProxyAddress 172.28.16.5 -ProxyPort 80'
        )
        ($global:Docker.Calls -join "`n") | Should -Not -Match 'd4other'
    }

    It 'writes one JSON line per client with the script result' {
        $r = Invoke-HostWiring -ProxyPort 8080
        $r.Json.container | Should -Be @('b2client', 'c3client')
        $r.Json.result.action | Should -Be @('wired', 'wired')
        (Get-ExecCalls)[0] | Should -Match '-ProxyPort 8080$'
    }

    It '-WhatIf runs only read-only docker commands and no docker exec' {
        $r = Invoke-HostWiring -WhatIf
        $r.ExitCode | Should -Be 0
        Get-ExecCalls | Should -BeNullOrEmpty
        $r.Json.whatIf | Should -Be @($true, $true)
        $global:Docker.Calls | ForEach-Object { $_ | Should -Match '^docker (ps|inspect|exec \S+ cmd /c where pwsh)' }
    }

    It 'fails with exit 3 and wires nothing when no proxy container is running' {
        $global:Docker.Containers = @($global:Docker.Containers | Where-Object Id -ne 'a1proxy')
        $r = Invoke-HostWiring
        $r.ExitCode | Should -Be 3
        $r.Json[0].error_description | Should -Match 'exactly one'
        Get-ExecCalls | Should -BeNullOrEmpty
    }

    It 'asks for -Network when the proxy has addresses on two networks, and uses the one named' {
        $global:Docker.Containers[0].Networks = '{"nat":{"IPAddress":"172.28.16.5"},"msi":{"IPAddress":"10.10.0.2"}}'
        (Invoke-HostWiring).ExitCode | Should -Be 3
        Get-ExecCalls | Should -BeNullOrEmpty
        (Invoke-HostWiring -Network msi).ExitCode | Should -Be 0
        (Get-ExecCalls)[0] | Should -Match '-ProxyAddress 10\.10\.0\.2 '
    }

    It 'exits 4 when one client fails, after still wiring the others' {
        $global:Docker.Containers[1].ExecExitCode = 3
        $r = Invoke-HostWiring
        $r.ExitCode | Should -Be 4
        $r.Json.exitCode | Should -Be @(3, 0)
        (Get-ExecCalls).Count | Should -Be 2
    }

    It '-Remove unwires the clients without looking up the proxy' {
        $r = Invoke-HostWiring -Remove
        $r.ExitCode | Should -Be 0
        $global:Docker.Calls | Should -Not -Contain 'docker ps --filter label=msi-proxy.role=proxy --format {{.ID}}'
        Get-ExecCalls | ForEach-Object { $_ | Should -Match '-File C:\\msi-proxy\\Set-MsiProxyWiring\.ps1 -Remove$' }
    }
}
