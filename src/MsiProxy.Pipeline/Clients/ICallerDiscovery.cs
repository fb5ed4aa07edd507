using System.Net;

namespace MsiProxy.Clients;

/// <summary>
/// Finds out who a caller the registry does not know is, from the source that starts containers (the Docker monitor):
/// a container that has just started may call before its start event was handled. The request gate holds such a
/// request (briefly, bounded) while this runs, then looks the caller up again.
/// </summary>
public interface ICallerDiscovery
{
    /// <summary>
    /// Registers the client that holds <paramref name="caller"/>, if a labelled container does, and completes when the
    /// registry is up to date (or nothing holds the address). Never throws for an unknown address.
    /// </summary>
    Task DiscoverAsync(IPAddress caller, CancellationToken cancellationToken);
}
