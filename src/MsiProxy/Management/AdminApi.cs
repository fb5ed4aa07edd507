using MsiProxy.Caching;
using MsiProxy.Clients;
using MsiProxy.Docker;
using MsiProxy.Requests;
using MsiProxy.Tokens;
using MsiProxy.Upstreams;

namespace MsiProxy.Management;

/// <summary>
/// The admin API (management listener only, API key required): clients, cache entries (never tokens) and
/// upstreams. Bad input is refused with 400 naming the field, and a refused change leaves the previous state.
/// </summary>
internal static class AdminApi
{
    public static RouteGroupBuilder MapAdminApi(this IEndpointRouteBuilder endpoints)
    {
        var admin = endpoints.MapGroup("/admin").AddEndpointFilter<ApiKeyFilter>();
        admin.MapGet("/clients", ListClients);
        admin.MapGet("/clients/{name}", GetClient);
        admin.MapPut("/clients/{name}", PutClient);
        admin.MapDelete("/clients/{name}", DeleteClient);
        admin.MapGet("/cache", ListCache);
        admin.MapDelete("/cache", FlushCache);
        admin.MapPost("/cache/refresh", RefreshCache);
        admin.MapGet("/upstreams", ListUpstreams);
        admin.MapPut("/upstreams", PutUpstreams);
        admin.MapWiringState();
        return admin;
    }

    /// <param name="Ready">False registers a client that is still being wired: it gets 503 + Retry-After instead of 403.</param>
    /// <param name="Proof">address (default), address+secret or secret.</param>
    /// <param name="IdentityHeaderSha256">The SHA-256 (hex) of the client's identity header; the secret itself is never sent here.</param>
    public sealed record ClientBody(string? Address, List<string>? Identities, List<string>? Prefetch, string? ContainerId, bool? Ready = null,
        List<string>? Endpoints = null, string? Proof = null, string? IdentityHeaderSha256 = null);

    /// <param name="IdentityHeader">Whether the client has an identity header digest; the digest itself is not shown.</param>
    public sealed record ClientView(string Name, string Address, IReadOnlyList<string> Identities, string Source, DateTimeOffset RegisteredAt,
        string? ContainerId, IReadOnlyList<string> Prefetch, bool Ready, IReadOnlyList<string> Endpoints, string Proof, bool IdentityHeader)
    {
        public static ClientView From(ClientRegistration r) =>
            new(r.Name, r.Address.ToString(), [.. r.Identities.Select(i => i.ToString())], r.Source, r.RegisteredAt, r.ContainerId, r.Prefetch, r.Ready,
                r.Endpoints, r.Proof.Name(), r.IdentityHeader is not null);
    }

    public sealed record CacheEntryView(string Identity, string Resource, string ApiVersionFamily, DateTimeOffset ExpiresOn, DateTimeOffset FetchedAt,
        DateTimeOffset RefreshAt, long Hits);

    public sealed record UpstreamsBody(List<string>? Upstreams);

    private static IResult ListClients(ClientRegistry registry) =>
        Results.Ok(registry.All.OrderBy(r => r.Name, StringComparer.Ordinal).Select(ClientView.From));

    private static IResult GetClient(string name, ClientRegistry registry) =>
        registry.Get(name) is { } r ? Results.Ok(ClientView.From(r)) : NotFound($"No client named '{name}'");

    private static IResult PutClient(string name, ClientBody? body, ClientRegistry registry)
    {
        if (body is null)
        {
            return Invalid("body: a JSON object with address and identities is required");
        }

        if (string.IsNullOrWhiteSpace(name) || name.Length > 253)
        {
            return Invalid("name: must be 1-253 characters");
        }

        if (!AddressRange.TryParse(body.Address, out var address))
        {
            return Invalid($"address: '{body.Address}' is not an IPv4/IPv6 address or CIDR block");
        }

        var identities = new List<IdentityBinding>();
        foreach (var (entry, index) in (body.Identities ?? []).Select((e, i) => (e, i)))
        {
            if (!IdentityBinding.TryParse(entry, out var binding, out var error))
            {
                return Invalid($"identities[{index}]: {error}");
            }

            identities.Add(binding);
        }

        foreach (var (resource, index) in (body.Prefetch ?? []).Select((e, i) => (e, i)))
        {
            if (!Uri.TryCreate(resource, UriKind.Absolute, out _))
            {
                return Invalid($"prefetch[{index}]: '{resource}' is not an absolute resource URI");
            }
        }

        foreach (var (endpoint, index) in (body.Endpoints ?? []).Select((e, i) => (e, i)))
        {
            if (ImdsEndpoints.ByName(endpoint) is null)
            {
                return Invalid($"endpoints[{index}]: '{endpoint}' is not an endpoint ({EndpointAccess.Names})");
            }
        }

        if (!ProofPolicies.TryRead(body.Proof, body.IdentityHeaderSha256, out var proof, out var digest, out var proofError))
        {
            return Invalid(proofError);
        }

        var existed = registry.Get(name) is not null;
        var registration = registry.Register(new ClientRegistration
        {
            Name = name,
            Address = address,
            Identities = identities,
            Prefetch = body.Prefetch ?? [],
            Endpoints = body.Endpoints ?? [],
            ContainerId = body.ContainerId,
            Ready = body.Ready ?? true,
            Proof = proof,
            IdentityHeader = digest,
            Source = RegistrationSources.Admin,
        });
        var view = ClientView.From(registration);
        return existed ? Results.Ok(view) : Results.Created($"/admin/clients/{Uri.EscapeDataString(name)}", view);
    }

    private static IResult DeleteClient(string name, ClientRegistry registry) =>
        registry.Deregister(name) ? Results.NoContent() : NotFound($"No client named '{name}'");

    private static IResult ListCache(TokenCache cache) =>
        Results.Ok(cache.Snapshot().OrderBy(e => e.Key.ToString(), StringComparer.Ordinal).Select(e =>
            new CacheEntryView(e.Key.Identity.ToString(), e.Key.Resource, e.Key.ApiVersionFamily, e.ExpiresOn, e.FetchedAt, e.RefreshAt, e.Hits)));

    private static IResult FlushCache(string? client, string? identity, string? resource, TokenCache cache, ClientRegistry registry)
    {
        if (!TryBuildFilter(client, identity, resource, registry, out var filter, out var error))
        {
            return error!;
        }

        return Results.Ok(new { removed = cache.RemoveWhere(filter, "admin") });
    }

    private static async Task<IResult> RefreshCache(string? client, string? identity, string? resource, TokenCache cache, ClientRegistry registry,
        UpstreamClient upstream, CancellationToken cancellationToken)
    {
        if (!TryBuildFilter(client, identity, resource, registry, out var filter, out var error))
        {
            return error!;
        }

        var refreshed = 0;
        var failed = new List<string>();
        foreach (var key in cache.Snapshot().Select(e => e.Key).Where(filter))
        {
            var request = new TokenRequest(TokenPrefetcher.PrefetchApiVersion, key.Resource, key.Identity, BypassCache: true, key.Authority)
            {
                ClientCapabilities = key.ClientCapabilities,
            };
            var work = UpstreamRequest.InBackground(request.UpstreamTarget(key.Identity, bypassCache: true), "admin");
            var result = await cache.GetAsync(key, new CacheDirective(Bypass: true), (_, _) => upstream.SendAsync(work, CancellationToken.None),
                cancellationToken);
            if (result.Token is not null)
            {
                refreshed++;
            }
            else
            {
                failed.Add($"{key}: {result.Uncached?.Status}");
            }
        }

        return Results.Ok(new { refreshed, failed });
    }

    private static IResult ListUpstreams(UpstreamSet upstreams) => Results.Ok(upstreams.Describe());

    private static IResult PutUpstreams(UpstreamsBody? body, UpstreamSet upstreams)
    {
        if (body?.Upstreams is not { } list)
        {
            return Invalid("upstreams: a JSON array of base URLs is required");
        }

        var errors = UpstreamSet.Validate(list).ToList();
        if (errors.Count > 0)
        {
            return Invalid("upstreams: " + string.Join("; ", errors).Replace("MsiProxy:Upstreams:", "upstreams[", StringComparison.Ordinal));
        }

        upstreams.Set(list);
        return Results.Ok(upstreams.Describe());
    }

    private static bool TryBuildFilter(string? client, string? identity, string? resource, ClientRegistry registry,
        out Func<TokenCacheKey, bool> filter, out IResult? error)
    {
        filter = _ => true;
        error = null;
        Func<TokenCacheKey, bool>? byClient = null;
        if (client is not null)
        {
            if (registry.Get(client) is not { } registration)
            {
                error = NotFound($"No client named '{client}'");
                return false;
            }

            byClient = key => registration.CanReach(key.Identity);
        }

        IdentitySelector? selector = null;
        if (identity is not null)
        {
            if (!IdentityBinding.TryParse(identity, out var binding, out var why) || binding.IsAny)
            {
                error = Invalid($"identity: {why ?? "'*' is not a single identity"}");
                return false;
            }

            selector = binding.Selector;
        }

        filter = key => (byClient is null || byClient(key)) && (selector is null || key.Identity == selector)
            && (resource is null || key.Resource == resource);
        return true;
    }

    private static IResult Invalid(string description) => Error(StatusCodes.Status400BadRequest, "invalid_request", description);

    private static IResult NotFound(string description) => Error(StatusCodes.Status404NotFound, "not_found", description);

    /// <summary>The management listener's errors, in the same JSON shape as the client listener's.</summary>
    internal static IResult Error(int status, string error, string description) =>
        Results.Json(new Dictionary<string, string> { ["error"] = error, ["error_description"] = description }, statusCode: status);
}
