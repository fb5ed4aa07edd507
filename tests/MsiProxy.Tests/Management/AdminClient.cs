using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using MsiProxy.Testing.Proxy;

namespace MsiProxy.Tests.Management;

/// <summary>Calls to the admin API on the management listener.</summary>
public sealed class AdminClient(ProxyHost proxy, string? key) : IDisposable
{
    private readonly HttpClient _http = proxy.CreateManagementClient();

    public async Task<(HttpStatusCode Status, JsonElement Json, string Body)> SendAsync(HttpMethod method, string path, object? body = null, string? rawBody = null)
    {
        using var request = new HttpRequestMessage(method, path);
        if (key is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }

        if (rawBody is not null)
        {
            request.Content = new StringContent(rawBody, System.Text.Encoding.UTF8, "application/json");
        }
        else if (body is not null)
        {
            request.Content = JsonContent.Create(body);
        }

        using var response = await _http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        var json = text.Length > 0 && (text[0] is '{' or '[') ? JsonDocument.Parse(text).RootElement.Clone() : default;
        return (response.StatusCode, json, text);
    }

    public Task<(HttpStatusCode Status, JsonElement Json, string Body)> GetAsync(string path) => SendAsync(HttpMethod.Get, path);

    public Task<(HttpStatusCode Status, JsonElement Json, string Body)> PutAsync(string path, object body) => SendAsync(HttpMethod.Put, path, body);

    public Task<(HttpStatusCode Status, JsonElement Json, string Body)> DeleteAsync(string path) => SendAsync(HttpMethod.Delete, path);

    public void Dispose() => _http.Dispose();
}
