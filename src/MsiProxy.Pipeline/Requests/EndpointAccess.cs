using Microsoft.Extensions.Options;
using MsiProxy.Clients;
using MsiProxy.Configuration;

namespace MsiProxy.Requests;

/// <summary>
/// Which endpoints a client may use: those every client may use (<c>MsiProxy:DefaultEndpoints</c>, or what the legacy
/// <c>MsiProxy:AllowedPaths</c> maps to), plus the ones its registration opts into.
/// </summary>
internal sealed class EndpointAccess(IOptionsMonitor<MsiProxyOptions> options)
{
    private (MsiProxyOptions Options, IReadOnlySet<ImdsEndpoint> Defaults)? _resolved;

    /// <summary>The endpoints every client may use, resolved once per configuration.</summary>
    public IReadOnlySet<ImdsEndpoint> Defaults
    {
        get
        {
            var current = options.CurrentValue;
            if (_resolved is { } resolved && ReferenceEquals(resolved.Options, current))
            {
                return resolved.Defaults;
            }

            var defaults = Resolve(current, out _);
            _resolved = (current, defaults);
            return defaults;
        }
    }

    public bool MayUse(ClientRegistration client, ImdsEndpoint endpoint)
    {
        // The App Service endpoint serves the same tokens as the IMDS one: whoever may use one may use the other.
        endpoint = endpoint.Dialect == Dialect.AppService ? ImdsEndpoints.Token : endpoint;
        return Defaults.Contains(endpoint) || client.Endpoints.Contains(endpoint.Name, StringComparer.OrdinalIgnoreCase);
    }

    /// <summary>
    /// The default endpoint set of <paramref name="options"/>. <c>AllowedPaths</c> (the old prefix list) still works: each
    /// prefix grants the endpoints at or below it — except user data, which a prefix no longer grants; it must be named.
    /// <paramref name="errors"/> names entries that match nothing (start-up refuses them).
    /// </summary>
    public static IReadOnlySet<ImdsEndpoint> Resolve(MsiProxyOptions options, out List<string> errors)
    {
        errors = [];
        var result = new HashSet<ImdsEndpoint>();
        if (options.DefaultEndpoints.Count > 0)
        {
            for (var i = 0; i < options.DefaultEndpoints.Count; i++)
            {
                if (ImdsEndpoints.ByName(options.DefaultEndpoints[i]) is { } endpoint)
                {
                    result.Add(endpoint);
                }
                else
                {
                    errors.Add($"MsiProxy:DefaultEndpoints:{i} = '{options.DefaultEndpoints[i]}' is not an endpoint ({Names})");
                }
            }

            return result;
        }

        if (options.AllowedPaths.Count == 0)
        {
            return ImdsEndpoints.All.Where(e => e.AllowedByDefault).ToHashSet();
        }

        for (var i = 0; i < options.AllowedPaths.Count; i++)
        {
            var prefix = options.AllowedPaths[i];
            var granted = ImdsEndpoints.All
                .Where(e => e != ImdsEndpoints.UserData && ImdsPaths.IsAtOrBelow(e.Path, prefix.TrimEnd('/')))
                .ToList();
            if (granted.Count == 0)
            {
                errors.Add($"MsiProxy:AllowedPaths:{i} = '{prefix}' matches no endpoint; use MsiProxy:DefaultEndpoints ({Names})");
            }

            result.UnionWith(granted);
        }

        return result;
    }

    public static string Names => string.Join(", ", ImdsEndpoints.All.Select(e => e.Name));
}
