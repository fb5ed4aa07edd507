namespace MsiProxy.Configuration;

/// <summary>
/// The configuration contract (section <c>MsiProxy</c>). Users' configuration files depend on these names:
/// change them only with a migration note in README.
/// </summary>
public sealed class MsiProxyOptions
{
    public const string SectionName = "MsiProxy";

    /// <summary>The one address IMDS lives at. The product default; tests and the demo always override it.</summary>
    public const string ImdsAddress = "http://169.254.169.254";

    /// <summary>Ordered upstream base URLs: IMDS itself, or msiserviceclient instances (other MsiProxies).</summary>
    public List<string> Upstreams { get; set; } = [];

    /// <summary>Statically registered callers.</summary>
    public List<ClientOptions> Clients { get; set; } = [];

    /// <summary>
    /// Endpoints every client may use, by name (see <c>Requests/ImdsEndpoint.cs</c>). Empty: token, instance, versions and
    /// loadbalancer; user data, the attested document, scheduled events and identity info are opt-in per client.
    /// </summary>
    public List<string> DefaultEndpoints { get; set; } = [];

    /// <summary>Before the endpoint table: path prefixes that could be forwarded. Still read when DefaultEndpoints is unset (README: migration).</summary>
    public List<string> AllowedPaths { get; set; } = [];

    /// <summary>How long a request from a caller still being discovered, or a client still being set up, is held before it is refused.</summary>
    public TimeSpan HoldTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// How a token request for an identity the client is not bound to is answered: <c>NotFound</c> — exactly as IMDS answers
    /// an identity that is not assigned (400 "Identity not found"), which SDKs and az CLI rely on to fall back — or
    /// <c>Forbidden</c> (403 naming the client). The audit log records the real reason either way.
    /// </summary>
    public UnboundIdentityAnswer UnboundIdentity { get; set; } = UnboundIdentityAnswer.NotFound;

    public ForwardingOptions Forwarding { get; set; } = new();

    /// <summary>Clients must send <c>Metadata: true</c>, exactly as IMDS demands (an SSRF guard we keep).</summary>
    public bool RequireMetadataHeader { get; set; } = true;

    /// <summary>
    /// Where the admin API's changes are kept across restarts: clients registered through it and the upstream list it
    /// set (JSON, replaced atomically). Empty: nothing is kept. The images set it to a volume (docs/deploy.md).
    /// </summary>
    public string? StateFile { get; set; }

    public ShutdownOptions Shutdown { get; set; } = new();

    public ManagementOptions Management { get; set; } = new();
    public CacheOptions Cache { get; set; } = new();
    public ResilienceOptions Resilience { get; set; } = new();
    public HealthOptions Health { get; set; } = new();
    public PrefetchOptions Prefetch { get; set; } = new();
    public KubernetesOptions Kubernetes { get; set; } = new();

    public IReadOnlyList<string> EffectiveUpstreams => Upstreams.Count > 0 ? Upstreams : [ImdsAddress];
}

public sealed class ClientOptions
{
    public string? Name { get; set; }
    public string? Address { get; set; }
    public List<string> Identities { get; set; } = [];
    public List<string> Prefetch { get; set; } = [];

    /// <summary>Endpoints this client may use beyond the defaults (userdata, attested, scheduledevents, identity-info).</summary>
    public List<string> Endpoints { get; set; } = [];

    /// <summary>How the client proves who it is: address (default), address+secret or secret (docs/proof-of-caller.md).</summary>
    public string? Proof { get; set; }

    /// <summary>The SHA-256 (hex) of the client's App Service identity header — never the secret itself.</summary>
    public string? IdentityHeaderSha256 { get; set; }
}

public enum UnboundIdentityAnswer
{
    NotFound,
    Forbidden,
}

public sealed class ForwardingOptions
{
    /// <summary>
    /// How long a forwarded answer that is the same for every caller (instance metadata, versions, load balancer) is
    /// shared between identical requests: a flood of them then costs the upstream one call. Zero turns sharing off.
    /// </summary>
    public TimeSpan SharedAnswerDuration { get; set; } = TimeSpan.FromSeconds(5);
}

/// <summary>How the proxy stops on SIGTERM (Docker, Kubernetes) or Ctrl+C: not ready first, then it drains.</summary>
public sealed class ShutdownOptions
{
    /// <summary>
    /// How long <c>/readyz</c> answers 503 while the listeners still serve, so whatever watches readiness (the kubelet, a
    /// load balancer in front of msiserviceclients) stops sending before the listeners close. Part of <see cref="DrainTimeout"/>.
    /// </summary>
    public TimeSpan ReadinessDelay { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// The bound on the whole stop (<c>HostOptions.ShutdownTimeout</c>): the readiness delay, then requests in flight
    /// finish; whatever is still running when it ends is cut off. Keep it below the platform's grace period (Docker's
    /// stop timeout, the pod's <c>terminationGracePeriodSeconds</c>).
    /// </summary>
    public TimeSpan DrainTimeout { get; set; } = TimeSpan.FromSeconds(10);
}

public sealed class ManagementOptions
{
    public string Urls { get; set; } = "http://0.0.0.0:8081";

    /// <summary>Admin API key. Without a key (here or in <see cref="ApiKeyFile"/>) the admin API is off.</summary>
    public string? ApiKey { get; set; }

    public string? ApiKeyFile { get; set; }
}

public sealed class CacheOptions
{
    public int MaxEntries { get; set; } = 10_000;

    /// <summary>Never serve a token with less than this left: the SDKs treat it as expired and would come straight back.</summary>
    public TimeSpan MinimumRemainingLifetime { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Fraction of a token's lifetime after which a hit starts a background refresh (the SDKs use one half).</summary>
    public double RefreshAfter { get; set; } = 0.5;

    /// <summary>After a failed background refresh, wait this long before the next one.</summary>
    public TimeSpan RefreshRetryInterval { get; set; } = TimeSpan.FromSeconds(30);
}

public sealed class ResilienceOptions
{
    public TimeSpan AttemptTimeout { get; set; } = TimeSpan.FromSeconds(3);

    /// <summary>Total time a client's request may spend upstream. Short: the SDKs retry on their own.</summary>
    public TimeSpan RequestBudget { get; set; } = TimeSpan.FromSeconds(8);

    /// <summary>Total time a background refresh may spend: long enough for IMDS's 70 s "410 updating" window.</summary>
    public TimeSpan RefreshBudget { get; set; } = TimeSpan.FromSeconds(90);

    public TimeSpan BaseDelay { get; set; } = TimeSpan.FromMilliseconds(500);
    public TimeSpan MaxDelay { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Cap on an upstream <c>Retry-After</c> we honour.</summary>
    public TimeSpan MaxRetryAfter { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>A 429 a client waits on is retried once only when the upstream's <c>Retry-After</c> is at most this.</summary>
    public TimeSpan WaitingRetryAfterLimit { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>How long IMDS may answer 410 ("updating") before we give up, as documented.</summary>
    public TimeSpan GoneWindow { get; set; } = TimeSpan.FromSeconds(70);

    public int MaxConcurrency { get; set; } = 5;
    public int RequestsPerSecond { get; set; } = 20;

    /// <summary>
    /// The window <see cref="RequestsPerSecond"/> is counted in. IMDS counts arrivals, the proxy counts starts, and a
    /// request that must open a connection arrives later than one started after it on a pooled connection: a window a
    /// little longer than IMDS's second keeps arrivals inside its limit.
    /// </summary>
    public TimeSpan RateWindow { get; set; } = TimeSpan.FromMilliseconds(1050);

    /// <summary>
    /// How long after an upstream answer its concurrency slot is free again. IMDS counts a request in flight until it has
    /// finished answering, a moment after the proxy has read the answer; starting the next one at once could be the sixth.
    /// </summary>
    public TimeSpan SlotReleaseDelay { get; set; } = TimeSpan.FromMilliseconds(10);

    /// <summary>Upstream attempts one client may have waiting for a slot (per priority); the next one gets 429.</summary>
    public int MaxQueuePerClient { get; set; } = 64;

    public double BreakerFailureRatio { get; set; } = 0.5;
    public int BreakerMinimumThroughput { get; set; } = 10;
    public TimeSpan BreakerSamplingDuration { get; set; } = TimeSpan.FromSeconds(30);
    public TimeSpan BreakerDuration { get; set; } = TimeSpan.FromSeconds(10);
}


public sealed class HealthOptions
{
    public TimeSpan Interval { get; set; } = TimeSpan.FromSeconds(10);
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Failed probes in a row after which an upstream is taken out of service.</summary>
    public int ActiveFailureThreshold { get; set; } = 2;

    /// <summary>A cheap GET every upstream answers: IMDS's unversioned version list.</summary>
    public string ProbePath { get; set; } = "/metadata/versions";

    /// <summary>Consecutive transport failures or timeouts after which an upstream is skipped.</summary>
    public int PassiveFailureThreshold { get; set; } = 3;

    /// <summary>How long an upstream that kept failing is skipped before it is tried again.</summary>
    public TimeSpan PassiveReactivation { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary><c>/readyz</c> is ready while an upstream answered within this window.</summary>
    public TimeSpan ReadyWindow { get; set; } = TimeSpan.FromSeconds(60);
}

public sealed class PrefetchOptions
{
    /// <summary>Resources warmed for every client's identities when it registers, so its first call is a hit.</summary>
    public List<string> Resources { get; set; } = [];
}

/// <summary>Node-local pod discovery (the proxy as a DaemonSet). See docs/kubernetes.md.</summary>
public sealed class KubernetesOptions
{
    public bool Enabled { get; set; }

    /// <summary>The node whose pods are registered; the chart sets <c>NODE_NAME</c> from the downward API.</summary>
    public string? NodeName { get; set; }

    /// <summary>The admin-owned bindings file (a mounted ConfigMap key). Unset or missing = no pod gets any identity.</summary>
    public string? BindingsPath { get; set; }

    /// <summary>API server URL; unset = in-cluster configuration. Plain http is accepted for loopback only (tests).</summary>
    public string? ApiServer { get; set; }

    /// <summary>A full relist this often, even when the watch looks healthy (missed events cannot linger longer).</summary>
    public TimeSpan ResyncInterval { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>Server-side timeout of one watch request; the watch then resumes from the last resourceVersion.</summary>
    public TimeSpan WatchTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>First and largest delay before reconnecting after a failed list or watch (doubling in between).</summary>
    public TimeSpan ReconnectDelay { get; set; } = TimeSpan.FromSeconds(1);
    public TimeSpan MaxReconnectDelay { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How often the bindings file is checked (polling survives the ConfigMap volume's symlink swap).</summary>
    public TimeSpan BindingsPollInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// How often the identity header Secrets that bindings name are read again (one get each, for this node's pods only),
    /// so a changed value takes effect; also on every relist. A Secret that cannot be read is retried sooner, with the
    /// reconnect delay. Polled rather than watched: a watch needs list and watch, which the chart does not grant on Secrets.
    /// </summary>
    public TimeSpan SecretRefreshInterval { get; set; } = TimeSpan.FromMinutes(1);

    public DnatOptions Dnat { get; set; } = new();
}

/// <summary>
/// The Linux transparent path: <c>169.254.169.254:80</c> from the pod network DNAT-ed to this proxy, every other pod
/// packet to that address dropped; the rules stay when the proxy stops (Interception/Kubernetes/PodRules).
/// </summary>
public sealed class DnatOptions
{
    public bool Enabled { get; set; }

    /// <summary>Inbound interface pattern of pod traffic, e.g. <c>cni+</c>, <c>azv+</c>, <c>cali+</c>.</summary>
    public string? Interface { get; set; }

    /// <summary>Pod CIDR the rule is limited to, e.g. <c>10.244.0.0/16</c>.</summary>
    public string? SourceCidr { get; set; }

    /// <summary>Where the proxy listens on the node (the node IP, from <c>status.hostIP</c>).</summary>
    public string? ProxyAddress { get; set; }

    public int ProxyPort { get; set; } = 80;

    /// <summary>The iptables binary; it must match the node's backend (nft or legacy).</summary>
    public string Command { get; set; } = "iptables";

    /// <summary>How often the rules are checked and put back if something (an iptables flush) removed them.</summary>
    public TimeSpan ReconcileInterval { get; set; } = TimeSpan.FromSeconds(30);
}
