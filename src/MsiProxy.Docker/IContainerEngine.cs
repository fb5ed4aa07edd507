namespace MsiProxy.Docker;

/// <summary>
/// The few Docker Engine calls the monitor makes, behind one small interface so the reconciler is tested with a fake
/// engine and the end-to-end tests use the real one (<see cref="DockerEngine"/>).
/// </summary>
internal interface IContainerEngine
{
    /// <summary>"linux" or "windows".</summary>
    Task<string> GetOperatingSystemAsync(CancellationToken cancellationToken);

    Task<IReadOnlyList<ContainerInfo>> ListRunningAsync(CancellationToken cancellationToken);

    Task<IReadOnlyList<NetworkInfo>> ListNetworksAsync(CancellationToken cancellationToken);

    /// <summary>The container if it exists and runs; null otherwise.</summary>
    Task<ContainerInfo?> InspectAsync(string id, CancellationToken cancellationToken);

    /// <summary>Container and network events from now on. Ends (or throws) when the stream is lost.</summary>
    IAsyncEnumerable<ContainerEvent> WatchAsync(CancellationToken cancellationToken);

    Task<ExecResult> ExecAsync(string id, string? user, IReadOnlyList<string> command, CancellationToken cancellationToken);

    /// <summary>Copies <paramref name="sourceDirectory"/> (files only) to <c>containerDirectory</c> in the container.</summary>
    Task CopyDirectoryAsync(string id, string sourceDirectory, string containerDirectory, CancellationToken cancellationToken);
}
