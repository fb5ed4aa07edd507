using System.Net;

namespace MsiProxy.Testing.Proxy;

/// <summary>
/// The fixture guard: a proxy under test may only ever have upstreams on loopback, or on addresses the test itself
/// created inside a network namespace or an internal Docker network (passed explicitly). The product's default
/// (http://169.254.169.254) — or any other address — fails the test before the proxy starts.
/// </summary>
public static class UpstreamGuard
{
    public static void Check(IEnumerable<string?> upstreams, IReadOnlyCollection<IPAddress>? testNetworkAddresses = null)
    {
        var list = upstreams.ToList();
        if (list.Count == 0 || list.All(string.IsNullOrWhiteSpace))
        {
            throw new InvalidOperationException(
                "Test proxy has no upstream configured: the product default is http://169.254.169.254, which tests must never reach. " +
                "Set MsiProxy:Upstreams:0 to a loopback emulator.");
        }

        foreach (var upstream in list)
        {
            if (!Uri.TryCreate(upstream, UriKind.Absolute, out var uri) || !IPAddress.TryParse(uri.Host.Trim('[', ']'), out var address))
            {
                throw new InvalidOperationException($"Test upstream '{upstream}' must be a literal IP address (no DNS in tests).");
            }

            var allowed = IPAddress.IsLoopback(address) || (testNetworkAddresses?.Contains(address) ?? false);
            if (!allowed)
            {
                throw new InvalidOperationException(
                    $"Test upstream '{upstream}' is not loopback nor an address of a network the test created; refusing to start the proxy.");
            }
        }
    }
}
