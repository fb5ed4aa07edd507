using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace MsiProxy.ImdsEmulator;

/// <summary>
/// The emulated IMDS on its own Kestrel listener, for tests and the demo (src/MsiProxy.Demo).
/// Bind it to loopback (the default) or to an address inside a network namespace the caller created.
/// </summary>
public sealed class ImdsEmulatorServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private int _stopped;

    private ImdsEmulatorServer(WebApplication app, EmulatorState state, Uri baseAddress)
    {
        _app = app;
        State = state;
        BaseAddress = baseAddress;
    }

    /// <summary>The address actually bound, e.g. http://127.0.0.1:41234 (the port resolved when 0 was asked).</summary>
    public Uri BaseAddress { get; }

    public EmulatorState State { get; }

    public static Task<ImdsEmulatorServer> StartAsync(
        EmulatorOptions? options = null, string url = "http://127.0.0.1:0", CancellationToken ct = default) =>
        StartAsync(new EmulatorState(options), url, ct);

    /// <summary>Starts with a given clock (tests pass a FakeTimeProvider to drive the expires_in countdown).</summary>
    public static Task<ImdsEmulatorServer> StartAsync(
        EmulatorOptions? options, string url, TimeProvider timeProvider, CancellationToken ct = default) =>
        StartAsync(new EmulatorState(options, timeProvider), url, ct);

    public static async Task<ImdsEmulatorServer> StartAsync(EmulatorState state, string url = "http://127.0.0.1:0", CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(state);
        ArgumentException.ThrowIfNullOrEmpty(url);

        // The empty builder reads no environment or appsettings: ASPNETCORE_URLS and the like cannot redirect it.
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore().ConfigureKestrel(k => k.AddServerHeader = false);
        builder.Services.AddRoutingCore();
        builder.Services.AddLogging(logging => logging.ClearProviders());
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(2));
        builder.WebHost.UseUrls(url);

        var app = builder.Build();
        app.UseRouting();
        app.MapImdsEmulator(state);
        await app.StartAsync(ct).ConfigureAwait(false);

        var bound = app.Urls.First();
        return new ImdsEmulatorServer(app, state, new Uri(bound));
    }

    /// <summary>Closes the listener; stalled requests are released. Tests use it to simulate "IMDS down".</summary>
    public async Task StopAsync()
    {
        if (Interlocked.Exchange(ref _stopped, 1) == 1)
        {
            return;
        }

        State.SignalStopping();
        await _app.StopAsync().ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
    }
}
