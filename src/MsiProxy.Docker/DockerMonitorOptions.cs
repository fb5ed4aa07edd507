using MsiProxy.Interception.Linux;

namespace MsiProxy.Docker;

/// <summary>How client containers' calls to 169.254.169.254 are sent to the proxy.</summary>
internal enum WiringMode
{
    /// <summary>Windows engines get <see cref="Windows"/>, every other engine <see cref="Linux"/>.</summary>
    Auto,

    /// <summary>docker exec of docker/scripts/Set-MsiProxyWiring.ps1 (address + netsh portproxy) inside each container.</summary>
    Windows,

    /// <summary>Host rules (<see cref="HostRules"/>): every bridge's IMDS traffic to the proxy, everything else to IMDS dropped.</summary>
    Linux,

    /// <summary>Nothing is changed in containers (they reach the proxy some other way, e.g. AZURE_POD_IDENTITY_AUTHORITY_HOST).</summary>
    None,
}

/// <summary>Section <c>MsiProxy:Docker</c>: the container monitor. It runs only when <see cref="Endpoint"/> is set.</summary>
internal sealed class DockerMonitorOptions
{
    public const string SectionName = "MsiProxy:Docker";

    /// <summary><c>unix:///var/run/docker.sock</c> or <c>npipe://./pipe/docker_engine</c>. Unset: the monitor is off.</summary>
    public string? Endpoint { get; set; }

    /// <summary>The network whose container addresses are registered. Unset: a container's only network.</summary>
    public string? Network { get; set; }

    public WiringMode Wiring { get; set; } = WiringMode.Auto;

    /// <summary>
    /// Where client containers are wired to. With host rules: the host address the proxy's client listener is bound to
    /// (required). Otherwise, when unset: the address of the container labelled <c>msi-proxy.role=proxy</c>.
    /// </summary>
    public string? ProxyAddress { get; set; }

    public int ProxyPort { get; set; } = 80;

    /// <summary>Port of msiserviceclient containers unless their <c>msi-proxy.port</c> label says otherwise.</summary>
    public int UpstreamPort { get; set; } = 80;

    /// <summary>Prefix of every label the monitor reads (<c>msi-proxy.client</c>, <c>msi-proxy.identities</c>, …).</summary>
    public string LabelPrefix { get; set; } = "msi-proxy";

    /// <summary>A full list-and-compare this often heals anything the event stream missed.</summary>
    public TimeSpan ReconcileInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>First retry delay after a failed wiring or a lost engine connection; doubles up to <see cref="RetryMaxDelay"/>.</summary>
    public TimeSpan RetryBaseDelay { get; set; } = TimeSpan.FromSeconds(1);

    public TimeSpan RetryMaxDelay { get; set; } = TimeSpan.FromSeconds(60);

    public HostRulesOptions HostRules { get; set; } = new();

    /// <summary>Folder holding the Windows wiring scripts (docker/scripts), copied whole into each Windows client.</summary>
    public string ScriptsPath { get; set; } = Path.Combine(AppContext.BaseDirectory, "scripts");

    /// <summary>Where the scripts folder lands inside Windows containers.</summary>
    public string ContainerScriptsPath { get; set; } = @"C:\msi-proxy";

    public string LabelClient => LabelPrefix + ".client";
    public string LabelIdentities => LabelPrefix + ".identities";
    public string LabelName => LabelPrefix + ".name";
    public string LabelPrefetch => LabelPrefix + ".prefetch";
    public string LabelRole => LabelPrefix + ".role";
    public string LabelPort => LabelPrefix + ".port";
    public string LabelProof => LabelPrefix + ".proof";

    public TimeSpan Backoff(int failures)
    {
        var factor = Math.Pow(2, Math.Clamp(failures - 1, 0, 20));
        var delay = TimeSpan.FromTicks((long)Math.Min(RetryBaseDelay.Ticks * factor, RetryMaxDelay.Ticks));
        return delay < TimeSpan.Zero ? TimeSpan.Zero : delay;
    }
}

/// <summary>Section <c>MsiProxy:Monitor</c>: the standalone monitor (<c>MsiProxy monitor</c>) drives a proxy through its admin API.</summary>
internal sealed class StandaloneMonitorOptions
{
    public const string SectionName = "MsiProxy:Monitor";

    /// <summary>The proxy's management listener, e.g. <c>http://proxy:8081</c>.</summary>
    public string? AdminUrl { get; set; }

    public string? ApiKey { get; set; }

    public string? ApiKeyFile { get; set; }

    public string? ResolveApiKey() =>
        !string.IsNullOrWhiteSpace(ApiKey) ? ApiKey
        : !string.IsNullOrWhiteSpace(ApiKeyFile) ? File.ReadAllText(ApiKeyFile).Trim()
        : null;
}
