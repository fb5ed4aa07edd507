using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;
using MsiProxy.Configuration;

namespace MsiProxy.Management;

/// <summary>
/// Admin API authentication: <c>Authorization: Bearer &lt;key&gt;</c>, compared in constant time (as SHA-256 digests,
/// so not even the key's length leaks). Without a configured key the admin API does not exist (404).
/// </summary>
internal sealed class ApiKeyFilter(IOptionsMonitor<MsiProxyOptions> options) : IEndpointFilter
{
    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        var expected = LoadKey(options.CurrentValue.Management);
        if (expected is null)
        {
            return AdminApi.Error(StatusCodes.Status404NotFound, "not_found", "Not found");
        }

        var header = http.Request.Headers.Authorization.ToString();
        var presented = header.StartsWith("Bearer ", StringComparison.Ordinal) ? header["Bearer ".Length..].Trim() : "";
        if (!CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(presented)), SHA256.HashData(Encoding.UTF8.GetBytes(expected))))
        {
            http.Response.Headers.WWWAuthenticate = "Bearer";
            return AdminApi.Error(StatusCodes.Status401Unauthorized, "unauthorized", "A valid admin API key is required");
        }

        return await next(context);
    }

    private static string? LoadKey(ManagementOptions management)
    {
        if (!string.IsNullOrEmpty(management.ApiKey))
        {
            return management.ApiKey;
        }

        if (string.IsNullOrEmpty(management.ApiKeyFile))
        {
            return null;
        }

        try
        {
            var key = File.ReadAllText(management.ApiKeyFile).Trim();
            return key.Length == 0 ? null : key;
        }
        catch (IOException)
        {
            return null;
        }
    }
}
