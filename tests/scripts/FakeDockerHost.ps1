# A stateful stand-in for a Windows Docker host on an Azure VM, for Pester mocks on Linux: the docker CLI (what it
# prints for ps, inspect, run, exec, rm, network, version), the containers' own netsh/route state (FakeWindowsContainer.ps1),
# curl.exe inside them, the host's Windows Firewall (netsh advfirewall), and the network between them. It records
# every docker call and every request IMDS, the proxy and the msiserviceclient receive, so a test can assert both
# what a script ran and what reached whom.
#
# The network behaves as docs/windows-isolation.md describes a NAT network on an Azure VM:
# - a container with no route to 169.254.169.254 cannot connect at all (Windows sends no link-local destination
#   to a gateway); LinkLocalViaDefaultRoute = $true models a host where it would, to prove a check can fail;
# - with a /32 route through its gateway (what Start-MsiServiceClient.ps1 adds), WinNAT carries the connection out
#   from the VM's address and IMDS answers, unless a host firewall rule blocks that container (process isolation only);
# - with the metadata address on its own interface, port 80 goes where its portproxy rule points, every other port
#   is refused;
# - the proxy answers registered clients with their identities (a token) and everyone else 403; the msiserviceclient
#   answers only the proxy's address.
# The fake container monitor wires a new labelled container a few docker execs after it started, by running the real
# Set-MsiProxyWiring.ps1 against that container's state (tests mock netsh and route with the fakes for that).
Set-StrictMode -Version Latest

$global:FakeMonitorWiringScript = Join-Path $PSScriptRoot '../../docker/scripts/Set-MsiProxyWiring.ps1'

function New-FakeDockerHost {
    param(
        [string] $Network = 'msi-proxy_apps',
        [string] $Subnet = '172.21.198.0/24',
        [string] $Gateway = '172.21.198.1',
        [string] $ProxyAddress = '172.21.198.10',
        [string] $ServiceClientAddress = '172.21.198.11',
        [int] $WiringDelayExecs = 2,
        [string] $ServerOs = 'windows'
    )
    $global:DockerHost = [pscustomobject]@{
        ServerOs = $ServerOs
        Calls = [System.Collections.Generic.List[string]]::new()
        Networks = [ordered]@{ $Network = [pscustomobject]@{ Name = $Network; Subnet = $Subnet; Gateway = $Gateway; Driver = 'nat' } }
        Containers = [System.Collections.Generic.List[object]]::new()
        NextHost = 20
        MonitorRunning = $true
        WiringDelayExecs = $WiringDelayExecs
        LinkLocalViaDefaultRoute = $false
        ProxyAnswersUnregistered = $false
        ServiceClientAdmitsAnyone = $false
        FailRunImages = [System.Collections.Generic.List[string]]::new()
        FailStartNamePattern = $null
        RmFailsFor = $null
        ImageUsers = @{}
        ImageRoutes = @{}
        FirewallRules = [System.Collections.Generic.List[object]]::new()
        HostElevated = $true
        ProxyClients = @{}
        ImdsRequests = [System.Collections.Generic.List[string]]::new()
        ProxyRequests = [System.Collections.Generic.List[string]]::new()
        ServiceClientRequests = [System.Collections.Generic.List[string]]::new()
    }
    Add-FakeDockerContainer -Name 'msi-proxy-proxy-1' -Image 'msi-proxy:dev-ltsc2022' -Labels @{ 'msi-proxy.role' = 'proxy' } -Address $ProxyAddress -Role 'proxy' | Out-Null
    Add-FakeDockerContainer -Name 'msi-proxy-msiserviceclient-1' -Image 'msi-serviceclient:dev-ltsc2022' -Labels @{ 'msi-proxy.role' = 'msiserviceclient' } -Address $ServiceClientAddress -Role 'msiserviceclient' -User 'ContainerAdministrator' | Out-Null
    $global:DockerHost
}

function New-FakeContainerId { -join ((1..64) | ForEach-Object { '{0:x}' -f (Get-Random -Maximum 16) }) }

function Add-FakeDockerContainer {
    param(
        [string] $Name, [string] $Image, [hashtable] $Labels = @{}, [string] $Address, [string] $Role,
        [string] $User, [string] $Network, [string] $Isolation = 'process'
    )
    $d = $global:DockerHost
    if (-not $Network) { $Network = @($d.Networks.Keys)[0] }
    $net = $d.Networks[$Network]
    if (-not $Address) {
        $prefix = $net.Subnet -replace '\.\d+/\d+$', ''
        $Address = '{0}.{1}' -f $prefix, $d.NextHost
        $d.NextHost++
    }
    if (-not $User) { $User = if ($d.ImageUsers.ContainsKey($Image)) { $d.ImageUsers[$Image] } else { 'ContainerUser' } }
    $labelled = $Labels.ContainsKey('msi-proxy.client') -and $Labels['msi-proxy.client'] -eq 'true'
    $container = [pscustomobject]@{
        Id = New-FakeContainerId
        Name = $Name
        Image = $Image
        Labels = $Labels
        Network = $Network
        Address = $Address
        Role = $Role
        User = $User
        Isolation = $Isolation
        Running = $true
        State = New-FakeContainerState -Address $Address -Gateway $net.Gateway -Elevated $false
        ExecsUntilWired = $(if ($labelled) { $d.WiringDelayExecs } else { -1 })
    }
    if ($d.ImageRoutes.ContainsKey($Image)) {
        # An image that carries a route to IMDS of its own, through whatever gateway the container gets.
        $container.State.Routes.Add([pscustomobject]@{ Destination = $d.ImageRoutes[$Image]; Netmask = '255.255.255.255'; Gateway = $net.Gateway })
    }
    $d.Containers.Add($container)
    $container
}

function Find-FakeDockerContainer {
    param([string] $Reference)
    $global:DockerHost.Containers | Where-Object { $_.Id -eq $Reference -or ($Reference.Length -ge 12 -and $_.Id.StartsWith($Reference)) -or $_.Name -eq $Reference } | Select-Object -First 1
}

function Test-FakeLabelFilter {
    param($Container, [string] $Filter)
    $key, $value = ($Filter -replace '^label=', '') -split '=', 2
    $Container.Labels.ContainsKey($key) -and ($null -eq $value -or $Container.Labels[$key] -eq $value)
}

function Get-FakeDockerCalls { param([string] $Pattern = '.') @($global:DockerHost.Calls | Where-Object { $_ -match $Pattern }) }

function Invoke-FakeDocker {
    $d = $global:DockerHost
    $d.Calls.Add((Format-FakeCall 'docker' $args))
    $global:LASTEXITCODE = 0
    $a = @($args)
    switch ($a[0]) {
        'version' { return $d.ServerOs }
        'ps' {
            $all = $a -contains '-a'
            $filters = @(for ($i = 0; $i -lt $a.Count; $i++) { if ($a[$i] -eq '--filter') { $a[$i + 1] } })
            $d.Containers | Where-Object { ($all -or $_.Running) } |
                Where-Object { $c = $_; @($filters | Where-Object { -not (Test-FakeLabelFilter $c $_) }).Count -eq 0 } |
                ForEach-Object { $_.Id.Substring(0, 12) }
            return
        }
        'inspect' {
            $c = Find-FakeDockerContainer $a[-1]
            if (-not $c) { $global:LASTEXITCODE = 1; return "Error: No such object: $($a[-1])" }
            $net = $d.Networks[$c.Network]
            $mac = '00:15:5d:{0:x2}:{1:x2}:{2:x2}' -f 0x3a, 0x8b, ([int]($c.Address -replace '^.*\.', ''))
            return ('{{"{0}":{{"IPAMConfig":null,"Links":null,"Aliases":["{1}"],"MacAddress":"{2}","NetworkID":"{3}","EndpointID":"{4}","Gateway":"{5}","IPAddress":"{6}","IPPrefixLen":24,"IPv6Gateway":"","GlobalIPv6Address":"","GlobalIPv6PrefixLen":0,"DriverOpts":null,"DNSNames":null}}}}' -f
                $c.Network, $c.Id.Substring(0, 12), $mac, ('9f' * 32), ('5e' * 32), $net.Gateway, $c.Address)
        }
        'network' {
            if ($a[1] -eq 'ls') {
                $driver = ($a[[array]::IndexOf($a, '--filter') + 1]) -replace '^driver=', ''
                return @($d.Networks.Values | Where-Object { $_.Driver -eq $driver } | ForEach-Object { $_.Name })
            }
            if ($a[1] -eq 'inspect') {
                $net = $d.Networks[$a[-1]]
                if (-not $net) { $global:LASTEXITCODE = 1; return "Error response from daemon: network $($a[-1]) not found" }
                return ('[{{"Subnet":"{0}","Gateway":"{1}"}}]' -f $net.Subnet, $net.Gateway)
            }
        }
        'run' { return Invoke-FakeDockerRun $a }
        'exec' { return Invoke-FakeDockerExec $a }
        'rm' {
            foreach ($ref in @($a | Select-Object -Skip 1 | Where-Object { $_ -ne '-f' })) {
                $c = Find-FakeDockerContainer $ref
                if (-not $c) { $global:LASTEXITCODE = 1; "Error response from daemon: No such container: $ref"; continue }
                if ($d.RmFailsFor -and $c.Name -match $d.RmFailsFor) {
                    $global:LASTEXITCODE = 1
                    "Error response from daemon: cannot remove container ""/$($c.Name)"": could not kill: hcs::System::Terminate: Access is denied."
                    continue
                }
                [void]$d.Containers.Remove($c)
                $d.ProxyClients.Remove($c.Address)
                $ref
            }
            return
        }
    }
    $global:LASTEXITCODE = 1
    "docker: '$($a[0])' is not a docker command the fake knows."
}

function Invoke-FakeDockerRun {
    param([object[]] $A)
    $d = $global:DockerHost
    $name = $null; $network = $null; $user = $null; $isolation = 'process'; $labels = @{}
    $i = 1
    $options = $true
    while ($options -and $i -lt $A.Count) {
        $option = "$($A[$i])"
        if ($option -eq '-d') { $i++ }
        elseif ($option -eq '--name') { $name = $A[$i + 1]; $i += 2 }
        elseif ($option -eq '--network') { $network = $A[$i + 1]; $i += 2 }
        elseif ($option -in '-u', '--user') { $user = $A[$i + 1]; $i += 2 }
        elseif ($option -eq '--label') { $k, $v = "$($A[$i + 1])" -split '=', 2; $labels[$k] = "$v"; $i += 2 }
        elseif ($option -match '^--isolation=(?<i>\w+)$') { $isolation = $Matches.i; $i++ }
        else { $options = $false }
    }
    $image = $A[$i]
    if ($d.FailRunImages -contains $image) {
        $global:LASTEXITCODE = 125
        return @("Unable to find image '$image' locally", "docker: Error response from daemon: manifest for $image not found: manifest unknown: manifest tagged by ""$($image -replace '^.*:', '')"" is not found.")
    }
    if ($network -and -not $d.Networks.Contains($network)) {
        $global:LASTEXITCODE = 125
        return "docker: Error response from daemon: network $network not found."
    }
    if ($isolation -eq 'default') { $isolation = 'process' }
    $c = Add-FakeDockerContainer -Name $name -Image $image -Labels $labels -User $user -Network $network -Isolation $isolation
    if ($d.FailStartNamePattern -and $name -match $d.FailStartNamePattern) {
        # Created, then the start fails: the container stays behind in the Created state.
        $c.Running = $false
        $c.ExecsUntilWired = -1
        $global:LASTEXITCODE = 127
        return @($c.Id, "docker: Error response from daemon: failed to create endpoint $name on network $network`: HNS failed with error : The object already exists.")
    }
    $c.Id
}

function Invoke-FakeDockerExec {
    param([object[]] $A)
    $d = $global:DockerHost
    $i = 1
    $user = $null
    if ($A[$i] -in '-u', '--user') { $user = $A[$i + 1]; $i += 2 }
    $c = Find-FakeDockerContainer $A[$i]
    if (-not $c -or -not $c.Running) { $global:LASTEXITCODE = 1; return "Error response from daemon: No such container: $($A[$i])" }
    $program = $A[$i + 1]
    $rest = @($A | Select-Object -Skip ($i + 2))
    Step-FakeMonitor $c

    $c.State.Elevated = (($(if ($user) { $user } else { $c.User })) -eq 'ContainerAdministrator')
    $saved = Get-Variable -Name Fake -Scope Global -ValueOnly -ErrorAction SilentlyContinue
    $global:Fake = $c.State
    try {
        switch ($program) {
            'netsh' { $out = @(Invoke-FakeNetsh @rest) }
            'route' { $out = @(Invoke-FakeRoute @rest) }
            'curl.exe' { $out = @(Invoke-FakeCurl $c $rest) }
            'cmd' { $global:LASTEXITCODE = 0; $out = @(if ($rest -contains 'where' -and $rest -contains 'pwsh') { $global:LASTEXITCODE = 1; 'INFO: Could not find files for the given pattern(s).' }) }
            default { $global:LASTEXITCODE = 1; $out = @("OCI runtime exec failed: exec failed: container_linux.go: ""$program"": executable file not found in %PATH%") }
        }
        $code = $global:LASTEXITCODE
    } finally { $global:Fake = $saved }
    $global:LASTEXITCODE = $code
    $out
}

function Step-FakeMonitor {
    <# The container monitor wires a labelled container a few execs after its start, with the real wiring script. #>
    param($Container)
    $d = $global:DockerHost
    if ($Container.ExecsUntilWired -lt 0 -or -not $d.MonitorRunning) { return }
    if ($Container.ExecsUntilWired -gt 0) { $Container.ExecsUntilWired--; return }
    $Container.ExecsUntilWired = -1
    $proxy = $d.Containers | Where-Object Role -eq 'proxy' | Select-Object -First 1
    $saved = Get-Variable -Name Fake -Scope Global -ValueOnly -ErrorAction SilentlyContinue
    $global:Fake = $Container.State
    $Container.State.Elevated = $true
    try {
        $out = @(& $global:FakeMonitorWiringScript -ProxyAddress $proxy.Address -ProxyPort 80 2>$null)
        if ($LASTEXITCODE -ne 0) { throw "the fake monitor could not wire $($Container.Name): $($out -join ' ')" }
    } finally { $global:Fake = $saved }
    $identities = if ($Container.Labels.ContainsKey('msi-proxy.identities')) { $Container.Labels['msi-proxy.identities'] } else { '' }
    $d.ProxyClients[$Container.Address] = [pscustomobject]@{ Name = $Container.Labels['msi-proxy.name']; Identities = $identities }
}

function Test-FakeFirewallBlocks {
    <# Whether a host firewall rule drops this container's traffic to Address (process-isolated containers only). #>
    param($Container, [string] $Address)
    if ($Container.Isolation -eq 'hyperv') { return $false }
    $n = ConvertTo-Ipv4Number $Container.Address
    foreach ($rule in $global:DockerHost.FirewallRules) {
        if ($rule.Direction -ne 'Out' -or $rule.Action -ne 'Block' -or $rule.Enabled -ne 'Yes') { continue }
        if (@($rule.RemoteIP -split ',' | ForEach-Object { $_ -replace '/32$', '' }) -notcontains $Address) { continue }
        foreach ($range in ($rule.LocalIP -split ',')) {
            $bounds = @(($range -replace '/32$', '') -split '-')
            $low = ConvertTo-Ipv4Number $bounds[0]
            $high = ConvertTo-Ipv4Number $bounds[-1]
            if ($n -ge $low -and $n -le $high) { return $true }
        }
    }
    return $false
}

function Get-FakeAnswer {
    <# What a connection from Container to Address:Port meets: Kind refused|timeout|http, Status, Body. #>
    param($Container, [string] $Address, [int] $Port, [string] $Path, [bool] $Metadata)
    $d = $global:DockerHost
    $refused = [pscustomobject]@{ Kind = 'refused'; Status = '000'; Body = '' }
    $token = '{{"access_token":"eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.fake-for-{0}.","client_id":"00000000-0000-0000-0000-000000000001","expires_in":"86399","expires_on":"1893456000","ext_expires_in":"86399","not_before":"1893369600","resource":"https://management.azure.com/","token_type":"Bearer"}}'
    $noMetadata = [pscustomobject]@{ Kind = 'http'; Status = '400'; Body = '{"error":"invalid_request","error_description":"Required metadata header not specified"}' }

    if ($Address -eq '169.254.169.254') {
        $state = $Container.State
        if ($state.Addresses -contains $Address) {
            $rule = $state.Rules | Where-Object { $_.ListenAddress -eq $Address -and $_.ListenPort -eq $Port } | Select-Object -First 1
            if (-not $rule) { return $refused }
            # The portproxy opens its own connection, from the container's own address.
            return Get-FakeContainerAnswer -From $Container.Address -Address $rule.ConnectAddress -Port $rule.ConnectPort -Path $Path -Metadata $Metadata
        }
        $viaGateway = [bool](Find-GatewayRoute (@($state.Routes | ForEach-Object { [pscustomobject]@{ Destination = $_.Destination; Netmask = $_.Netmask; Gateway = $_.Gateway; Persistent = $false } })) $Address)
        if (-not $viaGateway -and -not ($d.LinkLocalViaDefaultRoute -and $state.Gateway)) { return $refused }
        if (Test-FakeFirewallBlocks $Container $Address) { return $refused }
        $d.ImdsRequests.Add($Container.Name)
        if ($Port -ne 80) { return [pscustomobject]@{ Kind = 'timeout'; Status = '000'; Body = '' } }
        if (-not $Metadata) { return $noMetadata }
        return [pscustomobject]@{ Kind = 'http'; Status = '200'; Body = ($token -f 'imds') }
    }
    Get-FakeContainerAnswer -From $Container.Address -Address $Address -Port $Port -Path $Path -Metadata $Metadata
}

function Get-FakeContainerAnswer {
    param([string] $From, [string] $Address, [int] $Port, [string] $Path, [bool] $Metadata)
    $d = $global:DockerHost
    $target = $d.Containers | Where-Object { $_.Address -eq $Address -and $_.Running } | Select-Object -First 1
    if (-not $target) { return [pscustomobject]@{ Kind = 'timeout'; Status = '000'; Body = '' } }
    if ($Port -ne 80 -or $target.Role -notin 'proxy', 'msiserviceclient') { return [pscustomobject]@{ Kind = 'refused'; Status = '000'; Body = '' } }
    $token = '{"access_token":"eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.fake.","expires_on":"1893456000","resource":"https://management.azure.com/","token_type":"Bearer"}'
    $forbidden = [pscustomobject]@{ Kind = 'http'; Status = '403'; Body = '{"error":"forbidden","error_description":"The caller is not a registered MsiProxy client."}' }
    if ($target.Role -eq 'proxy') {
        $d.ProxyRequests.Add($From)
        if (-not $Metadata) { return [pscustomobject]@{ Kind = 'http'; Status = '400'; Body = '{"error":"invalid_request","error_description":"Required metadata header not specified"}' } }
        $client = if ($d.ProxyClients.ContainsKey($From)) { $d.ProxyClients[$From] } else { $null }
        if (($client -and $client.Identities) -or $d.ProxyAnswersUnregistered) { return [pscustomobject]@{ Kind = 'http'; Status = '200'; Body = $token } }
        return $forbidden
    }
    $d.ServiceClientRequests.Add($From)
    $proxy = $d.Containers | Where-Object Role -eq 'proxy' | Select-Object -First 1
    if ($From -eq $proxy.Address -or $d.ServiceClientAdmitsAnyone) { return [pscustomobject]@{ Kind = 'http'; Status = '200'; Body = $token } }
    $forbidden
}

function Invoke-FakeCurl {
    <# curl.exe as Windows ships it: -s -S -m -H -w -o; on a failed connection it still prints the -w text (000). #>
    param($Container, [object[]] $Arguments)
    $headers = @(); $writeOut = $null; $toNull = $false
    for ($i = 0; $i -lt $Arguments.Count; $i++) {
        switch ($Arguments[$i]) {
            { $_ -in '-H', '--header' } { $headers += $Arguments[++$i]; continue }
            { $_ -in '-w', '--write-out' } { $writeOut = $Arguments[++$i]; continue }
            { $_ -in '-o', '--output' } { $toNull = $Arguments[++$i] -eq 'NUL'; continue }
            { $_ -in '-m', '--max-time', '--noproxy' } { $i++; continue }
        }
    }
    $url = $Arguments | Where-Object { "$_" -match '^https?://' } | Select-Object -Last 1
    if ($url -notmatch '^http://(?<host>[^/:]+)(:(?<port>\d+))?(?<path>/.*)?$') { $global:LASTEXITCODE = 3; return 'curl: (3) URL rejected: Malformed input to a URL function' }
    $hostName = $Matches.host; $port = if ($Matches['port']) { [int]$Matches.port } else { 80 }; $path = if ($Matches['path']) { $Matches.path } else { '/' }
    $metadata = [bool]($headers | Where-Object { $_ -match '^Metadata:\s*true$' })
    $answer = Get-FakeAnswer -Container $Container -Address $hostName -Port $port -Path $path -Metadata $metadata
    $written = if ($writeOut) { ($writeOut -replace '%\{http_code\}', $answer.Status) -replace '\\n', "`n" } else { '' }
    switch ($answer.Kind) {
        'refused' { $global:LASTEXITCODE = 7; $lines = @("curl: (7) Failed to connect to $hostName port $port after 0 ms: Couldn't connect to server") }
        'timeout' { $global:LASTEXITCODE = 28; $lines = @("curl: (28) Connection timed out after 5001 milliseconds") }
        default { $global:LASTEXITCODE = 0; $lines = @(if (-not $toNull) { $answer.Body }) }
    }
    @(("$($lines -join "`n")$written") -split "`n" | Where-Object { $_ -ne '' })
}

function Invoke-FakeHostNetsh {
    <# netsh advfirewall firewall show|add|delete rule on the Docker host, printing what Windows prints. #>
    $d = $global:DockerHost
    $d.Calls.Add((Format-FakeCall 'netsh' $args))
    $global:LASTEXITCODE = 0
    $line = $args -join ' '
    if ($line -match '^advfirewall firewall (add|delete) ' -and -not $d.HostElevated) {
        $global:LASTEXITCODE = 1
        return 'The requested operation requires elevation (Run as administrator).'
    }
    switch -Regex ($line) {
        '^advfirewall firewall show rule name=(?<n>\S+)$' {
            $rules = @($d.FirewallRules | Where-Object Name -eq $Matches.n)
            if ($rules.Count -eq 0) { $global:LASTEXITCODE = 1; return @('No rules match the specified criteria.') }
            foreach ($r in $rules) {
                ''
                'Rule Name:                            {0}' -f $r.Name
                '----------------------------------------------------------------------'
                'Enabled:                              {0}' -f $r.Enabled
                'Direction:                            {0}' -f $r.Direction
                'Profiles:                             Domain,Private,Public'
                'Grouping:                             '
                'LocalIP:                              {0}' -f $r.LocalIP
                'RemoteIP:                             {0}' -f $r.RemoteIP
                'Protocol:                             Any'
                'Edge traversal:                       No'
                'Action:                               {0}' -f $r.Action
            }
            'Ok.'
            return
        }
        '^advfirewall firewall add rule name=(?<n>\S+) dir=(?<dir>in|out) action=(?<act>block|allow) protocol=any remoteip=(?<r>\S+) localip=(?<l>\S+) enable=yes profile=any$' {
            # netsh shows a single address as a /32.
            $show = { param($list) (@($list -split ',') | ForEach-Object { if ($_ -notmatch '[-/]') { "$_/32" } else { $_ } }) -join ',' }
            $d.FirewallRules.Add([pscustomobject]@{
                Name = $Matches.n; Enabled = 'Yes'; Direction = (Get-Culture).TextInfo.ToTitleCase($Matches.dir)
                Action = (Get-Culture).TextInfo.ToTitleCase($Matches.act); LocalIP = (& $show $Matches.l); RemoteIP = (& $show $Matches.r)
            })
            return 'Ok.'
        }
        '^advfirewall firewall delete rule name=(?<n>\S+)$' {
            $rules = @($d.FirewallRules | Where-Object Name -eq $Matches.n)
            if ($rules.Count -eq 0) { $global:LASTEXITCODE = 1; return 'No rules match the specified criteria.' }
            foreach ($r in $rules) { [void]$d.FirewallRules.Remove($r) }
            return @('', "Deleted $($rules.Count) rule(s).", 'Ok.')
        }
    }
    $global:LASTEXITCODE = 1
    "The following command was not found: $line."
}
