using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using MsiProxy.ImdsEmulator;

namespace MsiProxy.Testing.Net;

/// <summary>
/// The IMDS emulator hosted in the test process with its listening socket inside a <see cref="TransparentNamespace"/>
/// (on 127.0.0.1 there): programs in the namespace reach it, and the test reads its <see cref="State"/> — request
/// log, faults, issued tokens — directly, as with <see cref="ImdsEmulatorServer"/>.
/// </summary>
public sealed class NamespaceEmulator : IAsyncDisposable
{
    private readonly WebApplication _app;

    private NamespaceEmulator(WebApplication app, EmulatorState state, Uri baseAddress)
    {
        _app = app;
        State = state;
        BaseAddress = baseAddress;
    }

    /// <summary>e.g. http://127.0.0.1:41234 — an address inside the namespace, not in the test's own.</summary>
    public Uri BaseAddress { get; }

    public EmulatorState State { get; }

    public static async Task<NamespaceEmulator> StartAsync(TransparentNamespace ns, EmulatorOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(ns);
        var state = new EmulatorState(options);
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore().ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Listen(IPAddress.Loopback, 0);
        });
        // Kestrel binds the socket it is given: one made inside the namespace.
        builder.WebHost.UseSockets(sockets => sockets.CreateBoundListenSocket = endpoint =>
        {
            var socket = ns.CreateSocket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            socket.Bind(endpoint);
            return socket;
        });
        builder.Services.AddRoutingCore();
        builder.Services.AddLogging(logging => logging.ClearProviders());
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(2));

        var app = builder.Build();
        app.UseRouting();
        app.MapImdsEmulator(state);
        await app.StartAsync().ConfigureAwait(false);
        return new NamespaceEmulator(app, state, new Uri(app.Urls.First()));
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
    }
}
