using System.Net;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace MsiProxy.Routing;

/// <summary>
/// The two listeners: the client-facing one (what 169.254.169.254:80 is wired to) and the management one (health,
/// metrics, admin). Connections accepted on the management listener are tagged, and only tagged connections ever
/// reach management endpoints — whatever path or Host header a client sends.
/// </summary>
public sealed class Listeners
{
    private readonly List<ListenOptions> _client = [];
    private readonly List<ListenOptions> _management = [];

    public Listeners(IReadOnlyList<string> clientUrls, IReadOnlyList<string> managementUrls)
    {
        ClientUrls = clientUrls;
        ManagementUrls = managementUrls;
    }

    /// <summary>Client URLs from <c>--urls</c>/<c>ASPNETCORE_URLS</c> (default port 80), management from <c>MsiProxy:Management:Urls</c>.</summary>
    public static Listeners FromConfiguration(IConfiguration configuration) => new(
        Split(configuration["urls"], "http://0.0.0.0:80"),
        Split(configuration["MsiProxy:Management:Urls"], new Configuration.ManagementOptions().Urls));

    public IReadOnlyList<string> ClientUrls { get; }
    public IReadOnlyList<string> ManagementUrls { get; }

    /// <summary>Bound endpoints (actual ports once the server has started, also for port 0).</summary>
    public IReadOnlyList<IPEndPoint> ClientEndpoints => [.. _client.Select(l => l.IPEndPoint!)];

    public IReadOnlyList<IPEndPoint> ManagementEndpoints => [.. _management.Select(l => l.IPEndPoint!)];

    public void Configure(KestrelServerOptions kestrel)
    {
        foreach (var url in ClientUrls)
        {
            Listen(kestrel, url, "urls", listen => _client.Add(listen));
        }

        foreach (var url in ManagementUrls)
        {
            Listen(kestrel, url, "MsiProxy:Management:Urls", listen =>
            {
                listen.Use(next => connection =>
                {
                    connection.Features.Set(ManagementConnection.Instance);
                    return next(connection);
                });
                _management.Add(listen);
            });
        }
    }

    private static void Listen(KestrelServerOptions kestrel, string url, string key, Action<ListenOptions> configure)
    {
        var address = ParseUrl(url, key);
        kestrel.Listen(address, configure);
    }

    public static IPEndPoint ParseUrl(string url, string key)
    {
        BindingAddress binding;
        try
        {
            binding = BindingAddress.Parse(url);
        }
        catch (FormatException)
        {
            throw new Configuration.ConfigurationException($"{key} = '{url}' is not a URL such as http://0.0.0.0:80");
        }

        if (!string.Equals(binding.Scheme, "http", StringComparison.OrdinalIgnoreCase) || binding.IsUnixPipe || binding.PathBase.Length > 0)
        {
            throw new Configuration.ConfigurationException($"{key} = '{url}' must be a plain http://address:port URL");
        }

        var ip = binding.Host switch
        {
            "+" or "*" or "0.0.0.0" => IPAddress.Any,
            "[::]" or "::" => IPAddress.IPv6Any,
            "localhost" => IPAddress.Loopback,
            var host when IPAddress.TryParse(host.Trim('[', ']'), out var parsed) => parsed,
            _ => throw new Configuration.ConfigurationException($"{key} = '{url}': the host must be an IP address, '+', '*' or localhost"),
        };
        return new IPEndPoint(ip, binding.Port);
    }

    public static IReadOnlyList<string> Split(string? urls, string fallback) =>
        (string.IsNullOrWhiteSpace(urls) ? fallback : urls).Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}

/// <summary>Marks a connection accepted on the management listener.</summary>
internal sealed class ManagementConnection
{
    public static readonly ManagementConnection Instance = new();

    private ManagementConnection()
    {
    }
}

public static class ManagementConnectionExtensions
{
    public static bool IsManagementConnection(this HttpContext context) => context.Features.Get<ManagementConnection>() is not null;
}
