using MsiProxy.Testing.Net;

namespace MsiProxy.ImdsEmulator.Tests;

/// <summary>Starts a real emulator on an ephemeral loopback port per test and an HttpClient aimed at it.</summary>
public abstract class EmulatorTestBase : IAsyncLifetime
{
    private ImdsEmulatorServer? _server;
    private HttpClient? _client;

    protected ImdsEmulatorServer Server => _server ?? throw new InvalidOperationException("Not started.");

    protected EmulatorState State => Server.State;

    protected HttpClient Client => _client ?? throw new InvalidOperationException("Not started.");

    protected virtual EmulatorOptions Options => new();

    protected virtual TimeProvider? Time => null;

    public async Task InitializeAsync()
    {
        _server = Time is { } time
            ? await ImdsEmulatorServer.StartAsync(Options, "http://127.0.0.1:0", time)
            : await ImdsEmulatorServer.StartAsync(Options);
        _client = LoopbackCaller.Create("127.0.0.1", _server.BaseAddress, TimeSpan.FromSeconds(20));
    }

    public async Task DisposeAsync()
    {
        _client?.Dispose();
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }
}
