using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Options;
using MsiProxy.Clients;
using MsiProxy.Configuration;

namespace MsiProxy.Docker;

/// <summary>
/// The standalone monitor (<c>MsiProxy monitor</c>) drives a proxy it cannot share a process with through the admin
/// API: PUT/DELETE /admin/clients/{name} (with <c>ready</c> false while a container is being wired, so it gets 503,
/// not 403), PUT /admin/upstreams.
/// </summary>
internal sealed class AdminApiRegistrationSink : IRegistrationSink
{
    public const string HttpClientName = "msiproxy-monitor-admin";

    private readonly HttpClient _http;
    private readonly IOptions<MsiProxyOptions> _options;

    public AdminApiRegistrationSink(IHttpClientFactory httpClients, IOptions<StandaloneMonitorOptions> monitor, IOptions<MsiProxyOptions> options)
    {
        _options = options;
        var settings = monitor.Value;
        if (!Uri.TryCreate(settings.AdminUrl, UriKind.Absolute, out var adminUrl) || adminUrl.Scheme is not ("http" or "https"))
        {
            throw new ConfigurationException($"MsiProxy:Monitor:AdminUrl = '{settings.AdminUrl}' is not an http(s) URL of the proxy's management listener");
        }

        var key = settings.ResolveApiKey() ?? throw new ConfigurationException(
            "MsiProxy:Monitor:ApiKey or MsiProxy:Monitor:ApiKeyFile is required: the admin API refuses calls without a key");
        _http = httpClients.CreateClient(HttpClientName);
        _http.BaseAddress = new Uri(adminUrl.ToString().TrimEnd('/') + "/");
        _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
    }

    public IReadOnlyList<string> StaticUpstreams => _options.Value.Upstreams;

    public async Task<IReadOnlyList<ManagedRegistration>> ListAsync(CancellationToken cancellationToken)
    {
        var clients = await _http.GetFromJsonAsync("admin/clients", AdminApiJson.Default.ListRemoteClient, cancellationToken).ConfigureAwait(false) ?? [];
        return [.. clients.Where(c => c.WorkloadId is not null).Select(c => new ManagedRegistration(c.Name, c.WorkloadId!))];
    }

    public async Task RegisterAsync(ClientRegistration registration, CancellationToken cancellationToken)
    {
        var body = new RemoteClientBody(registration.Address.ToString(), [.. registration.Identities.Select(i => i.ToString())], registration.Prefetch,
            registration.WorkloadId, registration.Ready, registration.Proof.Name(), registration.IdentityHeader?.Hex);
        using var response = await _http.PutAsJsonAsync("admin/clients/" + Uri.EscapeDataString(registration.Name), body, AdminApiJson.Default.RemoteClientBody,
                cancellationToken)
            .ConfigureAwait(false);
        await EnsureSuccessAsync(response, "PUT /admin/clients/" + registration.Name, cancellationToken).ConfigureAwait(false);
    }

    public async Task<bool> DeregisterAsync(string name, string containerId, CancellationToken cancellationToken)
    {
        var path = "admin/clients/" + Uri.EscapeDataString(name);
        using (var current = await _http.GetAsync(path, cancellationToken).ConfigureAwait(false))
        {
            if (current.StatusCode == HttpStatusCode.NotFound)
            {
                return false;
            }

            await EnsureSuccessAsync(current, "GET /" + path, cancellationToken).ConfigureAwait(false);
            var client = await current.Content.ReadFromJsonAsync(AdminApiJson.Default.RemoteClient, cancellationToken).ConfigureAwait(false);
            if (client?.WorkloadId != containerId)
            {
                return false; // a newer container took the name: leave it alone
            }
        }

        using var response = await _http.DeleteAsync(path, cancellationToken).ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            return false;
        }

        await EnsureSuccessAsync(response, "DELETE /" + path, cancellationToken).ConfigureAwait(false);
        return true;
    }

    public async Task SetUpstreamsAsync(IReadOnlyList<string> upstreams, CancellationToken cancellationToken)
    {
        if (upstreams.Count == 0)
        {
            return; // the remote proxy keeps its own configured list
        }

        using var response = await _http.PutAsJsonAsync("admin/upstreams", new RemoteUpstreams(upstreams), AdminApiJson.Default.RemoteUpstreams, cancellationToken).ConfigureAwait(false);
        await EnsureSuccessAsync(response, "PUT /admin/upstreams", cancellationToken).ConfigureAwait(false);
    }

    private static async Task EnsureSuccessAsync(HttpResponseMessage response, string call, CancellationToken cancellationToken)
    {
        if (!response.IsSuccessStatusCode)
        {
            var body = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
            throw new HttpRequestException($"{call} answered {(int)response.StatusCode}: {body}", null, response.StatusCode);
        }
    }

    /// <summary>What the monitor reads of a registered client.</summary>
    internal sealed record RemoteClient(string Name, string? WorkloadId);

    /// <summary>The body of PUT /admin/clients/{name}.</summary>
    internal sealed record RemoteClientBody(string Address, List<string> Identities, IReadOnlyList<string> Prefetch, string? WorkloadId, bool Ready,
        string Proof, string? IdentityHeaderSha256);

    /// <summary>The body of PUT /admin/upstreams.</summary>
    internal sealed record RemoteUpstreams(IReadOnlyList<string> Upstreams);
}

/// <summary>The admin API's JSON as the monitor sends and reads it, generated at build time.</summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(List<AdminApiRegistrationSink.RemoteClient>))]
[JsonSerializable(typeof(AdminApiRegistrationSink.RemoteClientBody))]
[JsonSerializable(typeof(AdminApiRegistrationSink.RemoteUpstreams))]
internal sealed partial class AdminApiJson : JsonSerializerContext;
