using System.Diagnostics;

namespace MsiProxy.Upstreams;

/// <summary>Socket settings for every connection to an upstream.</summary>
internal static class UpstreamHttp
{
    public static SocketsHttpHandler Configure(SocketsHttpHandler handler)
    {
        // IMDS must be reached directly: never through an environment proxy, never following redirects or keeping cookies.
        handler.UseProxy = false;
        handler.AllowAutoRedirect = false;
        handler.UseCookies = false;
        handler.AutomaticDecompression = System.Net.DecompressionMethods.None;
        // A link-local upstream either answers at once or not at all.
        handler.ConnectTimeout = TimeSpan.FromSeconds(2);
        // So a re-created msiserviceclient behind a DNS name is picked up.
        handler.PooledConnectionLifetime = TimeSpan.FromMinutes(2);
        return handler;
    }

    public static SocketsHttpHandler Create() => Configure(new SocketsHttpHandler
    {
        ActivityHeadersPropagator = new ImdsAwarePropagator(DistributedContextPropagator.Current),
    });
}
