using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using MsiProxy.ImdsEmulator.Control;

namespace MsiProxy.ImdsEmulator.Hosting;

/// <summary>The standalone program: IMDS listener, optional control listener, both sharing one state.</summary>
internal static class StandaloneEmulator
{
    /// <summary>Loopback, never 169.254.169.254: binding the real IMDS address is the operator's explicit choice.</summary>
    public const string DefaultUrl = "http://127.0.0.1:5080";

    public static async Task<int> RunAsync(string[] args)
    {
        var builder = WebApplication.CreateBuilder(args);
        if (string.IsNullOrEmpty(builder.Configuration[WebHostDefaults.ServerUrlsKey]))
        {
            builder.WebHost.UseUrls(DefaultUrl);
        }

        builder.WebHost.ConfigureKestrel(k => k.AddServerHeader = false);

        // Per-request framework logs would drown the startup line; the request log lives in the control API.
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        var section = builder.Configuration.GetSection("Emulator");
        var options = section.Get<EmulatorOptions>() ?? new EmulatorOptions();
        var programOptions = section.Get<EmulatorProgramOptions>() ?? new EmulatorProgramOptions();
        var state = new EmulatorState(options);
        if (programOptions.FaultsFile is { Length: > 0 } faultsFile)
        {
            await using var file = File.OpenRead(faultsFile);
            FaultFile.EnqueueAll(state.Faults, await FaultFile.ReadAsync(file).ConfigureAwait(false));
        }

        builder.Services.AddSingleton(state);
        var app = builder.Build();
        app.MapImdsEmulator(state);

        await using var control = await StartControlAsync(programOptions.Control, state).ConfigureAwait(false);
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("MsiProxy.ImdsEmulator");
        app.Lifetime.ApplicationStarted.Register(() =>
        {
            var imdsUrls = string.Join(", ", app.Urls);
            var controlUrls = control is null ? "off" : string.Join(", ", control.Urls);
            EmulatorLog.Listening(logger, imdsUrls, controlUrls);
        });
        await app.RunAsync().ConfigureAwait(false);
        state.SignalStopping();
        return 0;
    }

    private static async Task<WebApplication?> StartControlAsync(ControlOptions options, EmulatorState state)
    {
        if (string.IsNullOrWhiteSpace(options.Urls))
        {
            return null;
        }

        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore();
        builder.Services.AddRoutingCore();
        builder.WebHost.UseUrls(options.Urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        var app = builder.Build();
        app.UseRouting();
        app.MapEmulatorControl(state);
        await app.StartAsync().ConfigureAwait(false);
        return app;
    }
}

internal static partial class EmulatorLog
{
    [LoggerMessage(Level = LogLevel.Information, Message = "IMDS emulator listening on {ImdsUrls}; control API on {ControlUrls}")]
    public static partial void Listening(ILogger logger, string imdsUrls, string controlUrls);
}
