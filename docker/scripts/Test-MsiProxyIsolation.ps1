<#
.SYNOPSIS
Checks, on a real Windows Docker host, that a container's only way to IMDS is the portproxy to MsiProxy: starts a
throwaway unlabelled container and a labelled one, reports in one table who reached what, and removes both.

.DESCRIPTION
Runs on the Docker host next to a running MsiProxy layout (docker/compose/windows/compose.yaml), as any user allowed
to use docker. Nothing on the host is changed; the two probe containers are removed at the end, also on failure.
1. `docker version --format {{.Server.Os}}` must say windows; the proxy (`msi-proxy.role=proxy`, exactly one) and
   the msiserviceclients (`msi-proxy.role=msiserviceclient`) are found with `docker ps` and `docker inspect`.
2. `docker run -d --network <proxy's network> --label msi-proxy.isolation-probe=<run id> <Image> cmd /c ping -t localhost`
   starts the unlabelled probe; the labelled probe adds `msi-proxy.client=true`, `msi-proxy.name=isolation-probe-<run id>`
   and `msi-proxy.identities=<Identities>`, so the container monitor registers and wires it.
3. Inside the probes (`docker exec`): `route print -4`, `netsh interface portproxy show v4tov4` and
   `curl.exe -s -S --noproxy * -m <ProbeTimeoutSeconds> -H "Metadata: true" -w "\n%{http_code}" <url>` (curl.exe ships
   in Windows images since 1803). Token bodies are only searched for "access_token"; no token is printed.
4. Unless -SkipElevatedProbe, the unlabelled probe then acts as a hostile elevated container would:
   `docker exec -u ContainerAdministrator <id> route add 169.254.169.254 mask 255.255.255.255 <its gateway>` and tries
   IMDS again. That route is exactly what the msiserviceclient adds for itself, so only a host-side block
   (Set-MsiProxyHostFirewall.ps1) stops it (docs/windows-isolation.md).

The table has one row per check: Container, Path (what was tried), Expected, Observed, Result (PASS, FAIL, SKIP).
-Json writes one JSON line per check instead, then {"result":"PASS|FAIL","passed":n,"failed":n,"skipped":n}.

Exit codes: 0 every check passed; 1 at least one check failed (isolation broken, or the labelled path does not
work); 2 invalid input; 3 prerequisite missing (not a Windows engine, no proxy container, docker missing);
4 a docker command failed, or (when every check passed) a probe container could not be removed; a leftover is
always reported as a JSON error line naming it.

.PARAMETER Image
Image of both probes; it must match the host build and contain curl.exe, route and netsh.
Default mcr.microsoft.com/windows/nanoserver:<$env:WINDOWS_VERSION, else ltsc2022>.

.PARAMETER Network
Docker network to probe (default: the proxy's only network).

.PARAMETER Identities
The labelled probe's msi-proxy.identities label. Default "system"; with "" it is registered with no identity and
the proxy must answer 403.

.PARAMETER Isolation
process, hyperv or default (docker run --isolation). The host firewall cannot filter Hyper-V isolated NAT containers.

.PARAMETER SkipElevatedProbe
Skip the check that an elevated container cannot give itself a route to IMDS.

.EXAMPLE
.\Test-MsiProxyIsolation.ps1

.EXAMPLE
.\Test-MsiProxyIsolation.ps1 -Image mcr.microsoft.com/windows/nanoserver:ltsc2025 -Json
#>
[CmdletBinding(PositionalBinding = $false)]
param(
    [string] $Image = "mcr.microsoft.com/windows/nanoserver:$(if ($env:WINDOWS_VERSION) { $env:WINDOWS_VERSION } else { 'ltsc2022' })",
    [string] $Network,
    [string] $Identities = 'system',
    [string] $LabelPrefix = 'msi-proxy',
    [int] $ProxyPort = 80,
    [int] $ServiceClientPort = 80,
    [string] $Isolation = 'default',
    [int] $WiringTimeoutSeconds = 60,
    [int] $ProbeTimeoutSeconds = 5,
    [switch] $SkipElevatedProbe,
    [switch] $Json,
    [string] $MetadataAddress = '169.254.169.254'
)
Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'
Import-Module (Join-Path $PSScriptRoot 'MsiProxyWiring.psm1')

$runId = [guid]::NewGuid().ToString('N').Substring(0, 8)
$probeLabel = "$LabelPrefix.isolation-probe=$runId"
$tokenPath = '/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com/'
$pollSeconds = 2
$checks = [System.Collections.Generic.List[object]]::new()
$started = [System.Collections.Generic.List[string]]::new()
$script:RunAttempted = $false
$problem = $null

function Add-Check {
    param([string] $Container, [string] $Path, [string] $Expected, [string] $Observed, [string] $Result, [string] $Detail)
    $checks.Add([pscustomobject][ordered]@{ Container = $Container; Path = $Path; Expected = $Expected; Observed = $Observed; Result = $Result; Detail = $Detail })
}

function Assert-Input {
    Assert-Ipv4Address $MetadataAddress -Name 'MetadataAddress'
    Assert-Port $ProxyPort -Name 'ProxyPort'
    Assert-Port $ServiceClientPort -Name 'ServiceClientPort'
    if ($Isolation -notin 'default', 'process', 'hyperv') {
        throw (New-WiringError invalid_input "Isolation must be default, process or hyperv, got '$Isolation'.")
    }
    foreach ($bound in @(@('WiringTimeoutSeconds', $WiringTimeoutSeconds), @('ProbeTimeoutSeconds', $ProbeTimeoutSeconds))) {
        if ($bound[1] -lt 1 -or $bound[1] -gt 600) { throw (New-WiringError invalid_input "$($bound[0]) must be between 1 and 600, got $($bound[1]).") }
    }
    if (-not $Image -or $Image -match '\s') { throw (New-WiringError invalid_input "Image must be an image reference, got '$Image'.") }
}

function Invoke-InContainer {
    param([string] $Id, [string[]] $Command, [string] $User)
    $arguments = @('exec')
    if ($User) { $arguments += @('-u', $User) }
    Invoke-NativeCommand docker ($arguments + @($Id) + $Command)
}

function Invoke-Probe {
    <# One HTTP request from inside a container; curl exit 0 means something answered over HTTP. #>
    param([string] $Id, [string] $Url)
    $run = Invoke-InContainer $Id @('curl.exe', '-s', '-S', '--noproxy', '*', '-m', "$ProbeTimeoutSeconds", '-H', 'Metadata: true', '-w', '\n%{http_code}', $Url)
    $status = $run.Output | Where-Object { $_ -match '^\d{3}$' } | Select-Object -Last 1
    $curlError = $run.Output | Where-Object { $_ -like 'curl: (*' } | Select-Object -First 1
    $observed = if ($run.ExitCode -ne 0) { "no connection (curl exit $($run.ExitCode))" }
        elseif ($run.Text -match '"access_token"\s*:\s*"[^"]') { "HTTP $status with a token" }
        else { "HTTP $status, no token" }
    [pscustomobject]@{
        Connected = $run.ExitCode -eq 0
        Status = $status
        Token = $run.ExitCode -eq 0 -and $run.Text -match '"access_token"\s*:\s*"[^"]'
        Observed = $observed
        Detail = $(if ($curlError) { $curlError } else { '' })
    }
}

function Get-ContainerRoutes {
    param([string] $Id)
    $print = Invoke-InContainer $Id @('route', 'print', '-4')
    if ($print.ExitCode -ne 0) { throw (New-WiringError command_failed "'docker exec $Id route print -4' failed (exit $($print.ExitCode)): $($print.Text.Trim())") }
    ConvertFrom-RoutePrint $print.Output
}

function Start-ProbeContainer {
    param([string] $Name, [string[]] $Labels)
    $arguments = @('run', '-d', '--name', $Name, '--network', $script:ProbeNetwork, '--label', $probeLabel)
    foreach ($label in $Labels) { $arguments += @('--label', $label) }
    if ($Isolation -ne 'default') { $arguments += "--isolation=$Isolation" }
    $script:RunAttempted = $true
    $run = Invoke-CheckedNativeCommand docker ($arguments + @($Image, 'cmd', '/c', 'ping', '-t', 'localhost'))
    # docker run -d prints the new container's ID last (pull progress, if any, comes before it).
    $id = ($run.Output | Where-Object { $_.Trim() } | Select-Object -Last 1).Trim()
    $started.Add($id)
    [pscustomobject]@{ Id = $id; Address = (Get-ContainerNetworkAddress -Id $id -Network $script:ProbeNetwork).Address }
}

function Test-RouteAbsent {
    param([string] $Container, [string] $Id)
    $route = Find-GatewayRoute (Get-ContainerRoutes $Id) $MetadataAddress
    if ($route) { Add-Check $Container "route to $MetadataAddress" 'none' "via $($route.Gateway)" 'FAIL' 'a route through the gateway leads past the proxy' }
    else { Add-Check $Container "route to $MetadataAddress" 'none' 'none' 'PASS' '' }
}

function Test-UnlabelledContainer {
    param($Probe, [object[]] $ServiceClients)
    $who = "unlabelled ($($Probe.Address))"
    Test-RouteAbsent $who $Probe.Id

    $imds = Invoke-Probe $Probe.Id "http://$MetadataAddress$tokenPath"
    Add-Check $who "IMDS directly ($($MetadataAddress):80)" 'no connection' $imds.Observed $(if ($imds.Connected) { 'FAIL' } else { 'PASS' }) $imds.Detail

    $proxy = Invoke-Probe $Probe.Id "http://$($script:Proxy.Address):$ProxyPort$tokenPath"
    Add-Check $who "the proxy directly ($($script:Proxy.Address):$ProxyPort)" 'no token (403)' $proxy.Observed $(if ($proxy.Token) { 'FAIL' } else { 'PASS' }) $proxy.Detail

    if ($ServiceClients.Count -eq 0) {
        Add-Check $who 'an msiserviceclient directly' 'no token' "no container labelled $LabelPrefix.role=msiserviceclient" 'SKIP' ''
    }
    foreach ($serviceClient in $ServiceClients) {
        $direct = Invoke-Probe $Probe.Id "http://$($serviceClient.Address):$ServiceClientPort$tokenPath"
        Add-Check $who "the msiserviceclient directly ($($serviceClient.Address):$ServiceClientPort)" 'no token (it admits only the proxy)' $direct.Observed $(if ($direct.Token) { 'FAIL' } else { 'PASS' }) $direct.Detail
    }

    if ($SkipElevatedProbe) { return }
    $path = "IMDS after adding its own route (elevated)"
    $gateway = Get-DefaultGatewayFromRoutes (Get-ContainerRoutes $Probe.Id)
    if (-not $gateway) { Add-Check $who $path 'no connection' 'no default gateway to route through' 'SKIP' ''; return }
    $add = Invoke-InContainer $Probe.Id @('route', 'add', $MetadataAddress, 'mask', '255.255.255.255', $gateway) -User 'ContainerAdministrator'
    if ($add.ExitCode -ne 0 -or $add.Text -match 'failed|requires elevation|Access is denied') {
        Add-Check $who $path 'no connection' 'route add was refused' 'PASS' $add.Text.Trim()
        return
    }
    $elevated = Invoke-Probe $Probe.Id "http://$MetadataAddress$tokenPath"
    $detail = if ($elevated.Connected) { "route via $gateway reaches IMDS: block it on the host (Set-MsiProxyHostFirewall.ps1)" } else { $elevated.Detail }
    Add-Check $who "$path via $gateway" 'no connection (host firewall rule)' $elevated.Observed $(if ($elevated.Connected) { 'FAIL' } else { 'PASS' }) $detail
}

function Wait-Wiring {
    <# Polls the labelled probe's portproxy rules until the monitor has wired it, within WiringTimeoutSeconds. #>
    param([string] $Id)
    $attempts = [math]::Max(1, [int][math]::Ceiling($WiringTimeoutSeconds / $pollSeconds))
    for ($attempt = 1; $attempt -le $attempts; $attempt++) {
        $show = Invoke-InContainer $Id @('netsh', 'interface', 'portproxy', 'show', 'v4tov4')
        $rules = ConvertFrom-NetshPortProxy $show.Output
        $rule = $rules | Where-Object { $_.ListenAddress -eq $MetadataAddress -and $_.ListenPort -eq 80 } | Select-Object -First 1
        if ($rule) { return [pscustomobject]@{ Rule = $rule; Seconds = ($attempt - 1) * $pollSeconds } }
        if ($attempt -lt $attempts) { Start-Sleep -Seconds $pollSeconds }
    }
    return $null
}

function Test-LabelledContainer {
    param($Probe)
    $who = "labelled ($($Probe.Address))"
    $expectedTarget = "$($script:Proxy.Address):$ProxyPort"
    $wiring = Wait-Wiring $Probe.Id
    $wiredToProxy = $false
    if (-not $wiring) {
        Add-Check $who 'wired by the monitor' "portproxy to $expectedTarget" "not wired after $WiringTimeoutSeconds s" 'FAIL' 'is the proxy running its container monitor (MsiProxy__Docker__Endpoint)?'
    } else {
        $target = "$($wiring.Rule.ConnectAddress):$($wiring.Rule.ConnectPort)"
        $wiredToProxy = $target -eq $expectedTarget
        Add-Check $who 'wired by the monitor' "portproxy to $expectedTarget" "portproxy to $target after $($wiring.Seconds) s" $(if ($wiredToProxy) { 'PASS' } else { 'FAIL' }) ''
    }
    Test-RouteAbsent $who $Probe.Id

    $viaProxy = Invoke-Probe $Probe.Id "http://$MetadataAddress$tokenPath"
    if ($Identities) {
        $ok = $viaProxy.Token -and $wiredToProxy
        Add-Check $who "$($MetadataAddress):80 (portproxy)" 'a token, from the proxy' $viaProxy.Observed $(if ($ok) { 'PASS' } else { 'FAIL' }) $viaProxy.Detail
    } else {
        $ok = $viaProxy.Status -eq '403' -and $wiredToProxy
        Add-Check $who "$($MetadataAddress):80 (portproxy)" 'HTTP 403 from the proxy (no identity)' $viaProxy.Observed $(if ($ok) { 'PASS' } else { 'FAIL' }) $viaProxy.Detail
    }

    $otherPort = Invoke-Probe $Probe.Id "http://$($MetadataAddress):443/"
    Add-Check $who "$($MetadataAddress):443" 'no connection (only port 80 is forwarded)' $otherPort.Observed $(if ($otherPort.Connected) { 'FAIL' } else { 'PASS' }) $otherPort.Detail
}

function Remove-ProbeContainers {
    <# Removes every container of this run: those started, and any the label finds (a run that failed half-way). #>
    $found = Invoke-NativeCommand docker @('ps', '-a', '-q', '--filter', "label=$probeLabel")
    $ids = @(@($started) + @($found.Output | ForEach-Object { $_.Trim() } | Where-Object { $_ -match '^[0-9a-f]+$' }) |
        Where-Object { $_ } | Select-Object -Unique)
    $short = @($ids | ForEach-Object { $_.Substring(0, [math]::Min(12, $_.Length)) } | Select-Object -Unique)
    if ($short.Count -eq 0) { return , @() }
    Invoke-NativeCommand docker (@('rm', '-f') + $short) | Out-Null
    $left = Invoke-NativeCommand docker @('ps', '-a', '-q', '--filter', "label=$probeLabel")
    , @($left.Output | ForEach-Object { $_.Trim() } | Where-Object { $_ -match '^[0-9a-f]+$' })
}

function Write-Report {
    $failed = @($checks | Where-Object Result -eq 'FAIL').Count
    $skipped = @($checks | Where-Object Result -eq 'SKIP').Count
    $passed = @($checks | Where-Object Result -eq 'PASS').Count
    if ($Json) {
        foreach ($check in $checks) { Write-JsonLine $check }
        Write-JsonLine ([ordered]@{ result = $(if ($failed) { 'FAIL' } else { 'PASS' }); passed = $passed; failed = $failed; skipped = $skipped; run = $runId })
    } else {
        ($checks | Format-Table Container, Path, Expected, Observed, Result -AutoSize | Out-String -Width 4096).Trim() -split "`r?`n"
        if ($failed) { "isolation: BROKEN ($failed of $($checks.Count) checks failed)" }
        else { "isolation: PASS ($passed checks passed, $skipped skipped)" }
    }
}

$exitCode = 0
try {
    Assert-Input
    $engine = Invoke-CheckedNativeCommand docker @('version', '--format', '{{.Server.Os}}')
    if ($engine.Text.Trim() -ne 'windows') {
        throw (New-WiringError prerequisite_missing "This checks a Windows Docker engine; the engine says its OS is '$($engine.Text.Trim())'.")
    }
    $proxyIds = @(Get-LabelledContainerIds "$LabelPrefix.role=proxy")
    if ($proxyIds.Count -ne 1) {
        throw (New-WiringError prerequisite_missing "Expected exactly one running container labelled '$LabelPrefix.role=proxy', found $($proxyIds.Count).")
    }
    $script:Proxy = Get-ContainerNetworkAddress -Id $proxyIds[0] -Network $Network
    $script:ProbeNetwork = $script:Proxy.Network
    $serviceClients = @(Get-LabelledContainerIds "$LabelPrefix.role=msiserviceclient" | ForEach-Object { Get-ContainerNetworkAddress -Id $_ -Network $script:ProbeNetwork })

    $unlabelled = Start-ProbeContainer -Name "msi-proxy-probe-unlabelled-$runId" -Labels @()
    $labelled = Start-ProbeContainer -Name "msi-proxy-probe-labelled-$runId" -Labels @(
        "$LabelPrefix.client=true", "$LabelPrefix.name=isolation-probe-$runId", "$LabelPrefix.identities=$Identities")
    Test-UnlabelledContainer $unlabelled $serviceClients
    Test-LabelledContainer $labelled
    Write-Report
    if (@($checks | Where-Object Result -eq 'FAIL').Count -gt 0) { $exitCode = 1 }
} catch {
    $failure = ConvertTo-WiringFailure $_
    $failure.Json
    $exitCode = $failure.ExitCode
} finally {
    if ($script:RunAttempted) {
        try {
            $leftover = Remove-ProbeContainers
            $problem = if ($leftover.Count -gt 0) { "probe containers left behind: $($leftover -join ', '); remove them with docker rm -f" }
        } catch {
            $problem = "removing the probe containers failed: $($_.Exception.Message)"
        }
        if ($problem) {
            [Console]::Error.WriteLine("error: $problem")
            Write-JsonLine ([ordered]@{ action = 'error'; error = 'command_failed'; error_description = $problem })
            if ($exitCode -eq 0) { $exitCode = 4 }
        }
    }
}
exit $exitCode
