using System.Net;
using System.Text.Json;
using MsiProxy.ImdsEmulator;
using MsiProxy.Testing.Net;
using MsiProxy.Testing.Proxy;

namespace MsiProxy.Tests.Requests;

/// <summary>Assertions the proxy-core tests share: IMDS-style JSON errors and "nothing reached the upstream".</summary>
internal static class CoreAssert
{
    /// <summary>The status is <paramref name="status"/> and the body is <c>{"error": code, "error_description": …}</c> JSON.</summary>
    public static async Task<string> ImdsErrorAsync(HttpResponseMessage response, HttpStatusCode status, string error)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"expected {(int)status}, got {(int)response.StatusCode}: {body}");
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        return ErrorDescription(body, error);
    }

    public static string ImdsError(RawHttpResponse response, int status, string error)
    {
        Assert.True(response.Status == status, $"expected {status}, got {response.Status}: {response.BodyText}");
        Assert.StartsWith("application/json", response.Header("Content-Type"));
        return ErrorDescription(response.BodyText, error);
    }

    /// <summary>IMDS's own answers, byte for byte (imds.md §3): clients read them.</summary>
    public const string NotFoundBody = "{ \"error\": \"Not found\" }";
    public const string MetadataHeaderMissingBody = "{\"error\":\"invalid_request\",\"error_description\":\"Required metadata header not specified\"}";
    public const string InstanceMetadataHeaderMissingBody = "{ \"error\": \"Bad request: . Required metadata header not specified\" }";
    public const string IdentityNotFoundBody = "{\"error\":\"invalid_request\",\"error_description\":\"Identity not found\"}";

    /// <summary>The status is <paramref name="status"/> and the body is exactly IMDS's <paramref name="body"/>, as JSON.</summary>
    public static void ImdsExact(RawHttpResponse response, int status, string body)
    {
        Assert.True(response.Status == status, $"expected {status}, got {response.Status}: {response.BodyText}");
        Assert.StartsWith("application/json", response.Header("Content-Type"));
        Assert.Equal(body, response.BodyText);
    }

    public static async Task ImdsExactAsync(HttpResponseMessage response, HttpStatusCode status, string body)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"expected {(int)status}, got {(int)response.StatusCode}: {text}");
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal(body, text);
    }

    public static async Task<string> OkAsync(HttpResponseMessage response)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"expected 200, got {(int)response.StatusCode}: {body}");
        return body;
    }

    /// <summary>The emulator saw no request but health probes since it had seen <paramref name="before"/> others.</summary>
    public static void NothingUpstream(ImdsEmulatorServer emulator, int before = 0)
    {
        var requests = NonProbeRequests(emulator);
        Assert.True(requests.Count == before,
            $"expected no upstream request, the emulator saw: {string.Join(", ", requests.Skip(before).Select(r => r.Method + " " + r.Path + r.Query))}");
    }

    /// <summary>The upstream requests the proxy sent, ignoring its active health probes.</summary>
    public static IReadOnlyList<RequestRecord> NonProbeRequests(ImdsEmulatorServer emulator) =>
        [.. emulator.State.Requests.Where(r => !r.Path.Equals("/metadata/versions", StringComparison.OrdinalIgnoreCase))];

    /// <summary>
    /// The request-log lines, once there are at least <paramref name="count"/>: a line is written as the exchange
    /// completes, which can be just after the client has read the response.
    /// </summary>
    public static Task<IReadOnlyList<CapturedLog>> RequestLogLinesAsync(ProxyHost proxy, int count) =>
        proxy.Logs.WaitForAsync("MsiProxy.Requests", count);

    private static string ErrorDescription(string body, string error)
    {
        using var json = JsonDocument.Parse(body);
        Assert.Equal(error, json.RootElement.GetProperty("error").GetString());
        var description = json.RootElement.GetProperty("error_description").GetString();
        Assert.False(string.IsNullOrWhiteSpace(description));
        return description!;
    }
}

/// <summary>Proxy settings for the core tests.</summary>
internal static class CoreSettings
{
    /// <summary>
    /// <see cref="ProxyHost.Settings"/> with a probe timeout long enough for a cold, loaded test machine: today one
    /// slow first probe marks the only upstream unavailable and every request is a 503 until the next probe.
    /// </summary>
    public static Dictionary<string, string?> Proxy(Uri upstream, params (string Name, string Address, string[] Identities)[] clients)
    {
        var settings = ProxyHost.Settings(upstream, clients);
        settings["MsiProxy:Health:Timeout"] = "00:00:05";
        return settings;
    }
}
