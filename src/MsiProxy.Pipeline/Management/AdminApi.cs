using System.Diagnostics.CodeAnalysis;
using Microsoft.Extensions.Options;
using MsiProxy.Caching;
using MsiProxy.Clients;
using MsiProxy.Configuration;
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
        // One filter instance, built here: AddEndpointFilter<T> compiles an expression tree to construct it.
        var admin = endpoints.MapGroup("/admin")
            .AddEndpointFilter(new ApiKeyFilter(endpoints.ServiceProvider.GetRequiredService<IOptionsMonitor<MsiProxyOptions>>()));
        admin.MapGet("/clients", ListClients);
        admin.MapGet("/clients/{name}", GetClient);
        admin.MapPut("/clients/{name}", PutClient);
        admin.MapDelete("/clients/{name}", DeleteClient);
        admin.MapGet("/cache", ListCache);
        admin.MapDelete("/cache", FlushCache);
        admin.MapPost("/cache/refresh", RefreshCache);
        admin.MapGet("/upstreams", ListUpstreams);
        admin.MapPut("/upstreams", PutUpstreams);
        return admin;
    }

    /// <param name="WorkloadId">The workload behind the client: a container id, or a pod UID. <c>containerId</c>, its former
    /// name, is still accepted (not both, unless they agree).</param>
    /// <param name="Ready">False registers a client that is still being wired: it gets 503 + Retry-After instead of 403.</param>
    /// <param name="Proof">address (default), address+secret or secret.</param>
    /// <param name="IdentityHeaderSha256">The SHA-256 (hex) of the client's identity header; the secret itself is never sent here.</param>
    public sealed record ClientBody(string? Address, List<string>? Identities, List<string>? Prefetch, string? WorkloadId = null, bool? Ready = null,
        List<string>? Endpoints = null, string? ContainerId = null, string? Proof = null, string? IdentityHeaderSha256 = null);

    /// <param name="IdentityHeader">Whether the client has an identity header digest; the digest itself is not shown.</param>
    public sealed record ClientView(string Name, string Address, IReadOnlyList<string> Identities, string Source, DateTimeOffset RegisteredAt,
        string? WorkloadId, IReadOnlyList<string> Prefetch, bool Ready, IReadOnlyList<string> Endpoints, string Proof, bool IdentityHeader)
    {
        public static ClientView From(ClientRegistration r) =>
            new(r.Name, r.Address.ToString(), [.. r.Identities.Select(i => i.ToString())], r.Source, r.RegisteredAt, r.WorkloadId, r.Prefetch, r.Ready,
                r.Endpoints, r.Proof.Name(), r.IdentityHeader is not null);
    }

    public sealed record CacheEntryView(string Identity, string Resource, string ApiVersionFamily, DateTimeOffset ExpiresOn, DateTimeOffset FetchedAt,
        DateTimeOffset RefreshAt, long Hits);

    public sealed record UpstreamsBody(List<string>? Upstreams);

    public sealed record CacheFlushed(int Removed);

    public sealed record CacheRefreshed(int Refreshed, List<string> Failed);

    private static IResult ListClients(ClientRegistry registry) =>
        Results.Ok(registry.All.OrderBy(r => r.Name, StringComparer.Ordinal).Select(ClientView.From).ToArray());

    private static IResult GetClient(string name, ClientRegistry registry) =>
        registry.Get(name) is { } r ? Results.Ok(ClientView.From(r)) : NotFound($"No client named '{name}'");

    private static async Task<IResult> PutClient(string name, HttpRequest request, ClientRegistry registry, AdminState state, CancellationToken cancellationToken)
    {
        var (body, refused) = await AdminJson.ReadAsync<ClientBody>(request, cancellationToken).ConfigureAwait(false);
        if (refused is not null)
        {
            return refused;
        }

        if (!TryCreateRegistration(name, body!, default, out var candidate, out var error))
        {
            return Invalid(error);
        }

        var existed = registry.Get(name) is not null;
        var registration = registry.Register(candidate);
        if (await state.SaveAsync().ConfigureAwait(false) is { } notSaved)
        {
            return StateNotSaved(notSaved);
        }

        var view = ClientView.From(registration);
        return existed ? Results.Ok(view) : Results.Created($"/admin/clients/{Uri.EscapeDataString(name)}", view);
    }

    /// <summary>
    /// The admin API's rules for a client, in one place: a PUT body, and each entry of the state file at start-up. The
    /// error names the field (<c>address: …</c>, <c>identities[1]: …</c>).
    /// </summary>
    internal static bool TryCreateRegistration(string? name, ClientBody body, DateTimeOffset registeredAt,
        [NotNullWhen(true)] out ClientRegistration? registration, [NotNullWhen(false)] out string? error)
    {
        registration = null;
        if (ClientNames.Problem(name) is { } nameProblem)
        {
            error = $"name: {nameProblem}";
            return false;
        }

        if (!AddressRange.TryParse(body.Address, out var address))
        {
            error = $"address: '{body.Address}' is not an IPv4/IPv6 address or CIDR block";
            return false;
        }

        if (address.IsEverything)
        {
            error = $"address: '{body.Address}' is every address: any caller would get this client's identities";
            return false;
        }

        var identities = new List<IdentityBinding>();
        foreach (var (entry, index) in (body.Identities ?? []).Select((e, i) => (e, i)))
        {
            if (!IdentityBinding.TryParse(entry, out var binding, out var why))
            {
                error = $"identities[{index}]: {why}";
                return false;
            }

            identities.Add(binding);
        }

        foreach (var (resource, index) in (body.Prefetch ?? []).Select((e, i) => (e, i)))
        {
            if (!Uri.TryCreate(resource, UriKind.Absolute, out _))
            {
                error = $"prefetch[{index}]: '{resource}' is not an absolute resource URI";
                return false;
            }
        }

        foreach (var (endpoint, index) in (body.Endpoints ?? []).Select((e, i) => (e, i)))
        {
            if (ImdsEndpoints.ByName(endpoint) is null)
            {
                error = $"endpoints[{index}]: '{endpoint}' is not an endpoint ({EndpointAccess.Names})";
                return false;
            }
        }

        if (!ProofPolicies.TryRead(body.Proof, body.IdentityHeaderSha256, out var proof, out var digest, out var proofError))
        {
            error = proofError;
            return false;
        }

        if (body.WorkloadId is not null && body.ContainerId is not null && body.WorkloadId != body.ContainerId)
        {
            error = "containerId: is the former name of workloadId, and the two differ; send workloadId only";
            return false;
        }

        var workload = body.WorkloadId ?? body.ContainerId;
        if (workload is not null && ClientNames.Problem(workload) is { } workloadProblem)
        {
            error = $"{(body.WorkloadId is null ? "containerId" : "workloadId")}: {workloadProblem}";
            return false;
        }

        registration = new ClientRegistration
        {
            Name = name!,
            Address = address,
            Identities = identities,
            Prefetch = body.Prefetch ?? [],
            Endpoints = body.Endpoints ?? [],
            WorkloadId = workload,
            Ready = body.Ready ?? true,
            Proof = proof,
            IdentityHeader = digest,
            Source = RegistrationSources.Admin,
            RegisteredAt = registeredAt,
        };
        error = null;
        return true;
    }

    private static async Task<IResult> DeleteClient(string name, ClientRegistry registry, AdminState state)
    {
        if (!registry.Deregister(name))
        {
            return NotFound($"No client named '{name}'");
        }

        return await state.SaveAsync().ConfigureAwait(false) is { } notSaved ? StateNotSaved(notSaved) : Results.NoContent();
    }

    private static IResult ListCache(TokenCache cache) =>
        Results.Ok(cache.Snapshot().OrderBy(e => e.Key.ToString(), StringComparer.Ordinal).Select(e =>
            new CacheEntryView(e.Key.Identity.ToString(), e.Key.Resource, e.Key.ApiVersionFamily, e.ExpiresOn, e.FetchedAt, e.RefreshAt, e.Hits)).ToArray());

    private static IResult FlushCache(string? client, string? identity, string? resource, TokenCache cache, ClientRegistry registry)
    {
        if (!TryBuildFilter(client, identity, resource, registry, out var filter, out var error))
        {
            return error!;
        }

        return Results.Ok(new CacheFlushed(cache.RemoveWhere(filter, "admin")));
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
            if (result.HasToken)
            {
                refreshed++;
            }
            else
            {
                failed.Add($"{key}: {result.PassThrough.Status}");
            }
        }

        return Results.Ok(new CacheRefreshed(refreshed, failed));
    }

    private static IResult ListUpstreams(UpstreamSet upstreams) => Results.Ok(upstreams.Describe());

    private static async Task<IResult> PutUpstreams(HttpRequest request, UpstreamSet upstreams, AdminState state, CancellationToken cancellationToken)
    {
        var (body, refused) = await AdminJson.ReadAsync<UpstreamsBody>(request, cancellationToken).ConfigureAwait(false);
        if (refused is not null)
        {
            return refused;
        }

        if (body!.Upstreams is not { } list)
        {
            return Invalid("upstreams: a JSON array of base URLs is required");
        }

        var errors = UpstreamSet.Validate(list).ToList();
        if (errors.Count > 0)
        {
            return Invalid("upstreams: " + UpstreamField(string.Join("; ", errors), "upstreams"));
        }

        state.SetUpstreams(list);
        if (await state.SaveAsync().ConfigureAwait(false) is { } notSaved)
        {
            return StateNotSaved(notSaved);
        }

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

    /// <summary>The validator names configuration keys (<c>MsiProxy:Upstreams:1</c>); a body's field is <c>upstreams[1]</c>.</summary>
    internal static string UpstreamField(string message, string field) =>
        System.Text.RegularExpressions.Regex.Replace(message, @"MsiProxy:Upstreams:(\d+)", field + "[$1]");

    internal static IResult Invalid(string description) => Error(StatusCodes.Status400BadRequest, "invalid_request", description);

    /// <summary>The change was made but the state file could not be written: the caller must know it will not last.</summary>
    private static IResult StateNotSaved(string description) => Error(StatusCodes.Status500InternalServerError, "state_not_saved", description);

    private static IResult NotFound(string description) => Error(StatusCodes.Status404NotFound, "not_found", description);

    /// <summary>The management listener's errors, in the same JSON shape as the client listener's.</summary>
    internal static IResult Error(int status, string error, string description) =>
        Results.Json(new Dictionary<string, string> { ["error"] = error, ["error_description"] = description }, ManagementJson.Default.DictionaryStringString,
            statusCode: status);
}
