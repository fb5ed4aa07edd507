using Microsoft.Extensions.Options;
using MsiProxy.Configuration;

namespace MsiProxy.Hosting;

internal static class StartupExtensions
{
    /// <summary>
    /// Builds, maps and runs the proxy; a configuration error (options validation, or a <see cref="ConfigurationException"/>)
    /// ends the process with exit code 2 and a message naming key and value. Any other exception is not a configuration
    /// error and propagates: an <see cref="InvalidOperationException"/> from a library or an iptables failure must not be
    /// reported as "the configuration is invalid". Building and mapping are inside the guard because that is where most such errors surface:
    /// Kestrel's listeners are parsed by <c>Build()</c>, and the options are first read (and validated) when
    /// <c>MapMsiProxy</c> creates YARP's configuration — long before <c>RunAsync</c>.
    /// </summary>
    /// <param name="configure">Runs after the routing table is mapped (e.g. the demo's start-up instructions).</param>
    public static async Task<int> RunMsiProxyAsync(this WebApplicationBuilder builder, Action<WebApplication>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        WebApplication? app = null;
        try
        {
            app = builder.Build();
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
        finally
        {
            if (app is not null)
            {
                await app.DisposeAsync();
            }
        }
    }
}
