using System.Text.Json;

namespace MsiProxy.Testing.Emulator;

/// <summary>Builds IMDS requests the way the SDKs send them, and reads the answers.</summary>
public static class ImdsRequests
{
    public const string TokenPath = "/metadata/identity/oauth2/token";

    /// <summary>A token request with Metadata: true and api-version 2018-02-01; extra query text appended as given.</summary>
    public static HttpRequestMessage Token(string resource, string? extraQuery = null, bool metadata = true)
    {
        var query = $"?api-version=2018-02-01&resource={Uri.EscapeDataString(resource)}{(extraQuery is null ? "" : "&" + extraQuery)}";
        var request = new HttpRequestMessage(HttpMethod.Get, TokenPath + query);
        if (metadata)
        {
            request.Headers.Add("Metadata", "true");
        }

        return request;
    }

    /// <summary>A GET with Metadata: true for any path and query.</summary>
    public static HttpRequestMessage Get(string pathAndQuery)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, pathAndQuery);
        request.Headers.Add("Metadata", "true");
        return request;
    }

    public static async Task<JsonElement> ReadJsonAsync(HttpResponseMessage response)
    {
        ArgumentNullException.ThrowIfNull(response);
        using var document = JsonDocument.Parse(await response.Content.ReadAsStringAsync().ConfigureAwait(false));
        return document.RootElement.Clone();
    }

    /// <summary>The JWT payload of an access token, decoded.</summary>
    public static JsonElement DecodeClaims(string accessToken)
    {
        ArgumentNullException.ThrowIfNull(accessToken);
        var parts = accessToken.Split('.');
        if (parts.Length != 3)
        {
            throw new FormatException("Not a JWT: expected three dot-separated parts.");
        }

        var payload = parts[1].Replace('-', '+').Replace('_', '/');
        payload = payload.PadRight(payload.Length + ((4 - (payload.Length % 4)) % 4), '=');
        using var document = JsonDocument.Parse(Convert.FromBase64String(payload));
        return document.RootElement.Clone();
    }
}
