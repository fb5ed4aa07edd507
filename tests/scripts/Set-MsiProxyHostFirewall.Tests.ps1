BeforeAll {
    $script:HostFirewall = Join-Path $PSScriptRoot '../../docker/scripts/Set-MsiProxyHostFirewall.ps1'
    $script:Fixtures = Join-Path $PSScriptRoot 'fixtures'
    Import-Module (Join-Path $PSScriptRoot '../../docker/scripts/MsiProxyWiring.psm1') -Force
    . (Join-Path $PSScriptRoot 'FakeWindowsContainer.ps1')
    . (Join-Path $PSScriptRoot 'FakeDockerHost.ps1')

    function Invoke-HostFirewall {
        $out = @(& $script:HostFirewall @args 2>$null)
        [pscustomobject]@{ ExitCode = $LASTEXITCODE; Lines = $out; Json = ($out | Select-Object -Last 1 | ConvertFrom-Json) }
    }
    function Get-ChangingCalls { @($global:DockerHost.Calls | Where-Object { $_ -match '^netsh advfirewall firewall (add|delete) ' }) }
    $script:AddCommand = 'netsh advfirewall firewall add rule name=MsiProxy-Block-IMDS-From-Containers dir=out action=block protocol=any remoteip=169.254.169.254 localip=172.21.198.0-172.21.198.10,172.21.198.12-172.21.198.255 enable=yes profile=any'
}

Describe 'Firewall rule and address range parsing' {
    It 'parses netsh advfirewall show rule into one object per rule' {
        $rules = ConvertFrom-NetshFirewallRule (Get-Content (Join-Path $script:Fixtures 'netsh-advfirewall-show-rule.txt'))
        $rules.Count | Should -Be 2
        $rules[0].Name | Should -Be 'MsiProxy-Block-IMDS-From-Containers'
        $rules[0].Direction | Should -Be 'Out'
        $rules[0].Action | Should -Be 'Block'
        $rules[0].LocalIP | Should -Be '172.21.198.0-172.21.198.10,172.21.198.12-172.21.198.255,172.30.240.1/32'
        $rules[0].RemoteIP | Should -Be '169.254.169.254/32'
        $rules[1].Enabled | Should -Be 'No'
        $rules[1].Protocol | Should -Be 'TCP'
    }

    It 'finds no rule in netsh''s answer for a missing one' {
        (ConvertFrom-NetshFirewallRule @('No rules match the specified criteria.')).Count | Should -Be 0
    }

    It 'turns subnets minus exempt addresses into merged netsh ranges' -ForEach @(
        @{ Subnet = @('172.21.198.0/24'); Except = @('172.21.198.11'); Expected = @('172.21.198.0-172.21.198.10', '172.21.198.12-172.21.198.255') }
        @{ Subnet = @('172.21.198.0/24', '172.21.198.128/25', '172.21.199.0/24'); Except = @(); Expected = @('172.21.198.0-172.21.199.255') }
        @{ Subnet = @('10.0.0.0/8'); Except = @('10.0.0.0', '10.255.255.255'); Expected = @('10.0.0.1-10.255.255.254') }
        @{ Subnet = @('192.168.1.7/30'); Except = @('192.168.1.5'); Expected = @('192.168.1.4', '192.168.1.6-192.168.1.7') }
        @{ Subnet = @('172.30.240.1/32'); Except = @('172.30.240.1'); Expected = @() }
    ) {
        $ranges = Get-Ipv4RangesExcept -Subnet $Subnet -Except $Except
        @($ranges) | Should -Be $Expected
    }

    It 'rejects a subnet that is not an IPv4 CIDR' {
        { Get-Ipv4RangesExcept -Subnet '172.21.198.0' } | Should -Throw '*CIDR*'
        { Get-Ipv4RangesExcept -Subnet '172.21.198.0/33' } | Should -Throw '*CIDR*'
    }
}

Describe 'Set-MsiProxyHostFirewall.ps1 on a fake Docker host' {
    BeforeEach {
        New-FakeDockerHost | Out-Null
        Mock docker -ModuleName MsiProxyWiring { Invoke-FakeDocker @args }
        Mock netsh -ModuleName MsiProxyWiring { Invoke-FakeHostNetsh @args }
    }

    It 'adds one rule that blocks the nat subnet except the msiserviceclient, with exactly these commands' {
        $r = Invoke-HostFirewall
        $r.ExitCode | Should -Be 0
        $r.Json.action | Should -Be 'added'
        $r.Json.exempt | Should -Be @('172.21.198.11')
        $r.Json.localIp | Should -Be @('172.21.198.0-172.21.198.10', '172.21.198.12-172.21.198.255')
        $global:DockerHost.Calls | Should -Be @(
            'docker network ls --filter driver=nat --format {{.Name}}'
            'docker network inspect --format "{{json .IPAM.Config}}" msi-proxy_apps'
            'docker ps --filter label=msi-proxy.role=msiserviceclient --format {{.ID}}'
            "docker inspect --format `"{{json .NetworkSettings.Networks}}`" $($global:DockerHost.Containers[1].Id.Substring(0, 12))"
            'netsh advfirewall firewall show rule name=MsiProxy-Block-IMDS-From-Containers'
            $script:AddCommand
        )
        $global:DockerHost.FirewallRules.Count | Should -Be 1
    }

    It 'changes nothing on a second run' {
        (Invoke-HostFirewall).ExitCode | Should -Be 0
        $global:DockerHost.Calls.Clear()
        $r = Invoke-HostFirewall
        $r.Json.action | Should -Be 'unchanged'
        Get-ChangingCalls | Should -BeNullOrEmpty
        $global:DockerHost.FirewallRules.Count | Should -Be 1
    }

    It 'replaces the rule when the msiserviceclient has moved' {
        (Invoke-HostFirewall).ExitCode | Should -Be 0
        $global:DockerHost.Containers[1].Address = '172.21.198.12'
        $global:DockerHost.Calls.Clear()
        $r = Invoke-HostFirewall
        $r.Json.action | Should -Be 'replaced'
        Get-ChangingCalls | Should -Be @(
            'netsh advfirewall firewall delete rule name=MsiProxy-Block-IMDS-From-Containers'
            ($script:AddCommand -replace '172\.21\.198\.0-172\.21\.198\.10,172\.21\.198\.12-', '172.21.198.0-172.21.198.11,172.21.198.13-')
        )
        $global:DockerHost.FirewallRules.Count | Should -Be 1
    }

    It 'covers every nat network on the host' {
        $global:DockerHost.Networks['nat'] = [pscustomobject]@{ Name = 'nat'; Subnet = '172.30.240.0/20'; Gateway = '172.30.240.1'; Driver = 'nat' }
        $global:DockerHost.Networks['transparent1'] = [pscustomobject]@{ Name = 'transparent1'; Subnet = '10.0.0.0/24'; Gateway = '10.0.0.1'; Driver = 'transparent' }
        $r = Invoke-HostFirewall
        $r.Json.localIp | Should -Be @('172.21.198.0-172.21.198.10', '172.21.198.12-172.21.198.255', '172.30.240.0-172.30.255.255')
    }

    It 'uses -Subnet and -ServiceClientAddress without asking docker' {
        $r = Invoke-HostFirewall -Subnet 10.244.0.0/24 -ServiceClientAddress 10.244.0.3
        $r.ExitCode | Should -Be 0
        $r.Json.localIp | Should -Be @('10.244.0.0-10.244.0.2', '10.244.0.4-10.244.0.255')
        @($global:DockerHost.Calls | Where-Object { $_ -like 'docker *' }) | Should -BeNullOrEmpty
    }

    It '-WhatIf reads but adds nothing' {
        $r = Invoke-HostFirewall -WhatIf
        $r.ExitCode | Should -Be 0
        $r.Json.action | Should -Be 'added'
        $r.Json.whatIf | Should -BeTrue
        Get-ChangingCalls | Should -BeNullOrEmpty
    }

    It '-Remove deletes the rule, and a second -Remove changes nothing' {
        (Invoke-HostFirewall).ExitCode | Should -Be 0
        $r = Invoke-HostFirewall -Remove
        $r.Json.action | Should -Be 'removed'
        $global:DockerHost.FirewallRules.Count | Should -Be 0
        $global:DockerHost.Calls.Clear()
        (Invoke-HostFirewall -Remove).Json.action | Should -Be 'unchanged'
        Get-ChangingCalls | Should -BeNullOrEmpty
    }

    It 'reports a PowerShell that is not elevated as exit 3' {
        $global:DockerHost.HostElevated = $false
        $r = Invoke-HostFirewall
        $r.ExitCode | Should -Be 3
        $r.Json.error_description | Should -Match 'elevated PowerShell'
        $global:DockerHost.FirewallRules.Count | Should -Be 0
    }

    It 'refuses with exit 3 to block everything when no msiserviceclient is found' {
        $global:DockerHost.Containers.RemoveAt(1)
        $r = Invoke-HostFirewall
        $r.ExitCode | Should -Be 3
        $r.Json.error_description | Should -Match 'ServiceClientAddress'
        Get-ChangingCalls | Should -BeNullOrEmpty
    }

    It 'rejects <Case> with exit 2 and changes nothing' -ForEach @(
        @{ Case = 'a subnet without a prefix'; Arguments = @{ Subnet = '172.21.198.0'; ServiceClientAddress = '172.21.198.11' } }
        @{ Case = 'a bad exempt address'; Arguments = @{ ServiceClientAddress = '172.21.198' } }
        @{ Case = 'a rule name with a space'; Arguments = @{ RuleName = 'MsiProxy rule' } }
    ) {
        $r = Invoke-HostFirewall @Arguments
        $r.ExitCode | Should -Be 2
        $r.Json.error | Should -Be 'invalid_input'
        Get-ChangingCalls | Should -BeNullOrEmpty
    }
}
