namespace MsiProxy.Requests;

/// <summary>How the proxy serves an endpoint: tokens through the binding and the cache, everything else forwarded.</summary>
internal enum EndpointKind
{
    Token,
    Forwarded,
}

/// <summary>The protocol a client speaks on an endpoint: IMDS's, or App Service's (a secret header, other shapes).</summary>
internal enum Dialect
{
    Imds,
    AppService,
}

/// <summary>
/// One IMDS endpoint the proxy serves: its canonical path, the query parameters it takes, whether every client may use
/// it (<see cref="AllowedByDefault"/>; the others are opt-in per client) and whether its answer is the same for every
/// caller for a few seconds, so forwarded answers may be shared (<see cref="SharedAnswer"/>).
/// </summary>
internal sealed record ImdsEndpoint(
    string Name,
    string Path,
    EndpointKind Kind,
    bool AllowedByDefault,
    bool SharedAnswer,
    IReadOnlyList<string> Parameters)
{
    public Dialect Dialect { get; init; } = Dialect.Imds;

    /// <summary>The parameter as the table spells it, or null when this endpoint takes no such parameter.</summary>
    public string? CanonicalParameter(string name)
    {
        // Indexed: every query parameter of every request comes here, and an interface's enumerator is an allocation.
        for (var i = 0; i < Parameters.Count; i++)
        {
            if (Parameters[i].Equals(name, StringComparison.OrdinalIgnoreCase))
            {
                return Parameters[i];
            }
        }

        return null;
    }

    public override string ToString() => Name;
}

/// <summary>
/// The endpoint table: every path the proxy will serve, and nothing else. Paths are matched case-insensitively (IMDS
/// does, and msal-node lower-cases its URL); anything not in the table — including anything below the token endpoint —
/// is a 404. Sensitive endpoints are denied unless a client opts in: user data (operators put secrets there), the
/// attested document (signed proof of the VM's identity) and scheduled events (maintenance control).
/// </summary>
internal static class ImdsEndpoints
{
    private static readonly string[] MetadataParameters = ["api-version", "format"];

    public static readonly ImdsEndpoint Token = new("token", "/metadata/identity/oauth2/token", EndpointKind.Token, true, false,
        ["api-version", "resource", "client_id", "object_id", "msi_res_id", "mi_res_id", "bypass_cache", "authority", "xms_cc",
         "token_sha256_to_refresh"]);

    public static readonly ImdsEndpoint IdentityInfo = new("identity-info", "/metadata/identity/info", EndpointKind.Forwarded, false, true,
        ["api-version"]);

    /// <summary>The instance document and any key path into it (<c>/metadata/instance/compute/vmId</c>).</summary>
    public static readonly ImdsEndpoint Instance = new("instance", "/metadata/instance", EndpointKind.Forwarded, true, true, MetadataParameters);

    public static readonly ImdsEndpoint UserData = new("userdata", "/metadata/instance/compute/userData", EndpointKind.Forwarded, false, true,
        MetadataParameters);

    public static readonly ImdsEndpoint Versions = new("versions", "/metadata/versions", EndpointKind.Forwarded, true, true, MetadataParameters);

    public static readonly ImdsEndpoint LoadBalancer = new("loadbalancer", "/metadata/loadbalancer", EndpointKind.Forwarded, true, true,
        MetadataParameters);

    /// <summary>Never shared: a GET enables the service for the VM, and the events change.</summary>
    public static readonly ImdsEndpoint ScheduledEvents = new("scheduledevents", "/metadata/scheduledevents", EndpointKind.Forwarded, false,
        false, ["api-version"]);

    /// <summary>Never shared: the document is signed over the caller's nonce.</summary>
    public static readonly ImdsEndpoint Attested = new("attested", "/metadata/attested/document", EndpointKind.Forwarded, false, false,
        ["api-version", "nonce"]);

    /// <summary>
    /// The App Service managed-identity protocol's token endpoint (<c>IDENTITY_ENDPOINT</c>, api-version 2019-08-01): the
    /// same tokens as <see cref="Token"/> — same binding, cache and upstream — asked for with the client's secret in
    /// <c>X-IDENTITY-HEADER</c> instead of <c>Metadata: true</c>. A client may use it when it may use <see cref="Token"/>;
    /// it is not one of the IMDS endpoints an operator names. MSAL sends its CAE parameters (<c>xms_cc</c>,
    /// <c>token_sha256_to_refresh</c>) here as to IMDS.
    /// </summary>
    public static readonly ImdsEndpoint AppServiceToken = new("appservice-token", "/msi/token", EndpointKind.Token, true, false,
        ["api-version", "resource", "client_id", "principal_id", "object_id", "mi_res_id", "xms_cc", "token_sha256_to_refresh"])
    {
        Dialect = Dialect.AppService,
    };

    public static readonly IReadOnlyList<ImdsEndpoint> All = [Token, IdentityInfo, Instance, UserData, Versions, LoadBalancer, ScheduledEvents, Attested];

    public static IEnumerable<string> DefaultNames => All.Where(e => e.AllowedByDefault).Select(e => e.Name);

    public static ImdsEndpoint? ByName(string name) => All.FirstOrDefault(e => e.Name.Equals(name, StringComparison.OrdinalIgnoreCase));
}
