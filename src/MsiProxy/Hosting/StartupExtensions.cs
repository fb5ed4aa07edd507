using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Options;
using MsiProxy.Configuration;

namespace MsiProxy.Hosting;

internal static class StartupExtensions
{
    /// <summary>
    /// Builds, maps and runs the proxy. A configuration error (options validation, or a <see cref="ConfigurationException"/>)
    /// ends the process with exit code 2 and a message naming key and value; a listener that cannot bind, before the host
    /// has started (so that nothing failing later is taken for one), with exit code 5 and a message naming the listeners.
    /// Any other exception is not a configuration error and propagates: an <see cref="InvalidOperationException"/> from a
    /// library or an iptables failure must not be reported as "the configuration is invalid". Building and mapping are
    /// inside the guard because that is where most such errors surface: Kestrel's listeners are parsed by <c>Build()</c>,
    /// and the options are first read (and validated) when <c>MapMsiProxy</c> creates YARP's configuration — long before
    /// <c>RunAsync</c>.
    /// </summary>
    /// <param name="configure">Runs after the routing table is mapped (e.g. the demo's start-up instructions).</param>
    public static async Task<int> RunMsiProxyAsync(this WebApplicationBuilder builder, Action<WebApplication>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        WebApplication? app = null;
        Routing.Listeners? listeners = null;
        var started = CancellationToken.None;
        try
        {
            app = builder.Build();
            listeners = app.Services.GetRequiredService<Routing.Listeners>(); // the host disposes its services if start-up fails
            started = app.Lifetime.ApplicationStarted;
            var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("MsiProxy.Hosting");
            app.Lifetime.ApplicationStarted.Register(() => StartupLog.Write(logger));
            app.MapMsiProxy();
            configure?.Invoke(app);
            await app.RunAsync();
            return 0;
        }
        catch (Exception ex) when (ex is OptionsValidationException or ConfigurationException)
        {
            var messages = ex is OptionsValidationException validation ? validation.Failures : [ex.Message];
            await Console.Error.WriteLineAsync("MsiProxy cannot start, the configuration is invalid:");
            foreach (var message in messages)
            {
                await Console.Error.WriteLineAsync("  " + message);
            }

            return 2;
        }
        catch (Exception ex) when (listeners is not null && !started.IsCancellationRequested && ListenerBindFailure(ex) is { } reason)
        {
            // Kestrel names the address only for a port in use; the listeners as configured name it in every case.
            await Console.Error.WriteLineAsync($"MsiProxy cannot start: a listener cannot bind, {reason} "
                + $"(urls = '{string.Join(';', listeners.ClientUrls)}', MsiProxy:Management:Urls = '{string.Join(';', listeners.ManagementUrls)}'): {ex.Message}");
            return 5;
        }
        finally
        {
            if (app is not null)
            {
                await app.DisposeAsync();
            }
        }
    }

    /// <summary>
    /// Why a listener could not bind, when that is the failure: a port another process holds, an address this machine
    /// does not have (yet — e.g. the IMDS address before interception added it) or an address family it lacks (<c>[::]</c>
    /// with IPv6 off), or a port below 1024 without the right. These are the operator's to fix, like a configuration
    /// error, so they get a line on stderr and exit code 5 (3 and 4 are Start-MsiServiceClient.ps1's, which passes the
    /// proxy's code on), not a stack trace.
    /// </summary>
    private static string? ListenerBindFailure(Exception failure)
    {
        for (Exception? cause = failure; cause is not null; cause = cause.InnerException)
        {
            var reason = cause switch
            {
                AddressInUseException or SocketException { SocketErrorCode: SocketError.AddressAlreadyInUse } => "the address is in use by another process",
                SocketException { SocketErrorCode: SocketError.AddressNotAvailable } => "this machine has no such address",
                SocketException { SocketErrorCode: SocketError.AddressFamilyNotSupported } => "this machine has no such address family (IPv6 off?)",
                SocketException { SocketErrorCode: SocketError.AccessDenied } => "this process may not listen there",
                _ => null,
            };
            if (reason is not null)
            {
                return reason;
            }
        }

        return null;
    }
}
