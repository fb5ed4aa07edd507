using MsiProxy.Requests;

namespace MsiProxy.Upstreams;

/// <summary>Who an upstream call is for, and whether a client is waiting on it (background work takes only spare capacity).</summary>
internal readonly record struct UpstreamWork(string Client, bool Background)
{
    public static UpstreamWork Waiting(string client) => new(client, false);

    public static UpstreamWork InBackground(string client) => new(client, true);
}

/// <summary>
/// One request for the upstream, built by the proxy: <see cref="Target"/> is a path and query made from checked values
/// (each escaped), never the client's raw target. Only the allow-listed <see cref="Headers"/> travel with it.
/// </summary>
internal sealed record UpstreamRequest(string Target, UpstreamWork Work, ForwardedHeaders Headers);
