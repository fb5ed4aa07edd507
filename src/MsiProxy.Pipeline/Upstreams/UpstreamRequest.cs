using MsiProxy.Requests;
using MsiProxy.Upstreams.Scheduling;

namespace MsiProxy.Upstreams;

/// <summary>
/// One request for the upstream, built by the proxy: <see cref="Target"/> is a path and query made from checked values
/// (each escaped), never the client's raw target. Only the allow-listed <see cref="Headers"/> travel with it. Its
/// attempts wait in <see cref="Client"/>'s own queue of the fair scheduler; background work takes only spare capacity.
/// </summary>
internal sealed record UpstreamRequest(string Target, string Client, WorkPriority Priority, ForwardedHeaders Headers)
{
    public static UpstreamRequest Waiting(string target, string client, ForwardedHeaders headers) => new(target, client, WorkPriority.Foreground, headers);

    public static UpstreamRequest InBackground(string target, string client) => new(target, client, WorkPriority.Background, ForwardedHeaders.None);

    public bool Background => Priority == WorkPriority.Background;
}
