using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using System.Text.Json;
using System.Text.Json.Serialization;
using Serilog;
using Serilog.Events;

namespace MsiProxy.ServiceDefaults;

/// <summary>What a service tells the defaults about itself: its telemetry names and which requests are not traced.</summary>
/// <param name="ServiceName">The OpenTelemetry service name unless <c>OTEL_SERVICE_NAME</c> is set.</param>
/// <param name="Sources">ActivitySources whose spans are recorded.</param>
/// <param name="Meters">Meters exported to Prometheus (and OTLP).</param>
/// <param name="IsTraced">Which server requests get a span (e.g. not the scrapes and probes of the management port).</param>
/// <param name="AuditCategory">The log category whose events are never dropped on the way to the console (backpressure instead).</param>
public sealed record ServiceTelemetry(string ServiceName, IReadOnlyList<string> Sources, IReadOnlyList<string> Meters,
    Func<HttpContext, bool> IsTraced, string AuditCategory);

/// <summary>
/// Cross-cutting defaults in one place: Serilog (compact JSON on the console, also written through to
/// OpenTelemetry logs), OpenTelemetry traces and metrics, OTLP export when <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is set, the
/// Prometheus exporter, and ASP.NET Core health checks behind <c>/healthz</c> (alive) and <c>/readyz</c> (every check
/// tagged <see cref="ReadyTag"/>).
/// </summary>
public static partial class ServiceDefaultsExtensions
{
    /// <summary>The tag of the health checks <c>/readyz</c> waits for.</summary>
    public const string ReadyTag = "ready";

    /// <summary>Probes are reads: any other method gets 405, as it did when these were <c>MapGet</c> routes.</summary>
    private static readonly HttpMethodMetadata ReadOnly = new([HttpMethods.Get, HttpMethods.Head]);

    /// <summary>
    /// Kestrel's memory-pool meter records on every buffer rented and returned — 3.8 % of a cached hit's CPU when it is
    /// listened to — and says nothing an operator of this service acts on; the process's memory is in the runtime meter.
    /// A dropped view leaves the instruments without a listener, so Kestrel skips recording.
    /// </summary>
    private const string UnexportedMeter = "Microsoft.AspNetCore.MemoryPool";

    public static WebApplicationBuilder AddServiceDefaults(this WebApplicationBuilder builder, ServiceTelemetry telemetry)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(telemetry);
        builder.Services.AddHealthChecks();

        builder.Logging.ClearProviders();
        builder.Logging.AddOpenTelemetry(logging =>
        {
            logging.IncludeFormattedMessage = true;
            logging.IncludeScopes = true;
        });
        builder.Services.AddSingleton(_ => ConsoleQueuesOf(builder.Configuration, telemetry));
        builder.Services.AddSerilog((services, logger) => Configure(logger, builder.Configuration, services.GetRequiredService<ConsoleQueues>(),
                (key, value, kept) => LevelNotReloaded(services.GetRequiredService<ILoggerFactory>().CreateLogger(LogLevels.Category), key, value ?? "", kept)),
            preserveStaticLogger: true, writeToProviders: true);
        builder.Services.AddSingleton(services => new ShapedLogs(services.GetRequiredService<ConsoleQueues>(), services.GetRequiredService<ILoggerFactory>(),
            LogLevels.Properties(builder.Configuration), services.GetServices<ILoggerProvider>()));

        var exporting = !string.IsNullOrWhiteSpace(builder.Configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]);
        var otel = builder.Services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService(builder.Configuration["OTEL_SERVICE_NAME"] ?? telemetry.ServiceName))
            .WithTracing(tracing =>
            {
                tracing
                    .AddSource([.. telemetry.Sources])
                    .AddAspNetCoreInstrumentation(o => o.Filter = telemetry.IsTraced)
                    .AddHttpClientInstrumentation();
                if (SpanSampling.For(exporting, builder.Configuration["OTEL_TRACES_SAMPLER"]) is { } sampler)
                {
                    tracing.SetSampler(sampler);
                }
            })
            .WithMetrics(metrics => metrics
                .AddMeter([.. telemetry.Meters, LogQueues.MeterName])
                .AddAspNetCoreInstrumentation()
                .AddView(instrument => instrument.Meter.Name == UnexportedMeter ? MetricStreamConfiguration.Drop : null)
                .AddHttpClientInstrumentation()
                .AddRuntimeInstrumentation()
                .AddPrometheusExporter());
        if (exporting)
        {
            otel.UseOtlpExporter();
        }

        return builder;
    }

    /// <summary>
    /// Two bounded queues to one console, off the request thread, written in batches by one thread (<see cref="ConsoleQueue"/>;
    /// one lock on standard output keeps lines whole), shared by Serilog and <see cref="ShapedLogs"/>. Request lines and
    /// every other event may be dropped (counted) when their queue is full; audit events apply backpressure instead.
    /// </summary>
    private static ConsoleQueues ConsoleQueuesOf(IConfiguration configuration, ServiceTelemetry telemetry) =>
        ConsoleQueues.Create(telemetry.AuditCategory, LogQueues.Capacity(configuration), ConsoleOutput.StandardOutput);

    /// <summary>
    /// The logger: levels, then the console's queues. Runs while the host is built, so a bad capacity or level stops
    /// start-up with exit 2.
    /// </summary>
    private static LoggerConfiguration Configure(LoggerConfiguration logger, IConfiguration configuration, ConsoleQueues console,
        Action<string, string?, LogEventLevel> refusedReload)
    {
        return logger
            .MinimumLevel.Information()
            .MinimumLevel.Override("Microsoft.AspNetCore", LogEventLevel.Warning)
            .MinimumLevel.Override("Microsoft.Extensions.Http", LogEventLevel.Warning)
            // An unhealthy check is logged at Error on every probe; /readyz itself says why.
            .MinimumLevel.Override("Microsoft.Extensions.Diagnostics.HealthChecks", LogEventLevel.Fatal)
            .MinimumLevel.Override("System.Net.Http", LogEventLevel.Warning)
            .MinimumLevel.Override("Yarp", LogEventLevel.Warning)
            .MinimumLevel.Override("Polly", LogEventLevel.Warning)
            .MinimumLevel.Override("Microsoft.AspNetCore.DataProtection", LogEventLevel.Error)
            .MinimumLevel.Override("Microsoft.AspNetCore.Server.Kestrel", LogEventLevel.Error)
            .WithConfiguredLevels(configuration, refusedReload)
            .Enrich.FromLogContext()
            .WriteTo.Sink(console);
    }

    [LoggerMessage(EventId = 3, Level = LogLevel.Warning, EventName = "LevelNotReloaded",
        Message = "{Key} = {Value} after a configuration reload is not a level; {Level} stays in force")]
    private static partial void LevelNotReloaded(Microsoft.Extensions.Logging.ILogger logger, string key, string value, LogEventLevel level);

    /// <summary><c>/healthz</c> (the process answers), <c>/readyz</c> (every ready check passes) and <c>/metrics</c>.</summary>
    public static IEndpointRouteBuilder MapDefaultEndpoints(this IEndpointRouteBuilder endpoints)
    {
        // Alive is answering at all: no check runs, so a slow upstream never makes the kubelet restart the proxy.
        endpoints.MapHealthChecks("/healthz", new HealthCheckOptions
        {
            Predicate = _ => false,
            ResponseWriter = (context, report) => context.Response.WriteAsJsonAsync(new LiveAnswer(report.Status.ToString()), HealthJson.Default.LiveAnswer),
        }).WithMetadata(ReadOnly);
        endpoints.MapHealthChecks("/readyz", new HealthCheckOptions { Predicate = c => c.Tags.Contains(ReadyTag), ResponseWriter = WriteReadyAsync })
            .WithMetadata(ReadOnly);
        endpoints.MapPrometheusScrapingEndpoint("/metrics");
        return endpoints;
    }

    /// <summary>JSON that says which check is not ready and why: <c>{"status":"NotReady","checks":[{name,ready,detail}]}</c>.</summary>
    private static Task WriteReadyAsync(HttpContext context, HealthReport report)
    {
        var ready = report.Status == HealthStatus.Healthy;
        var checks = report.Entries.Select(e => new HealthEntry(e.Key, e.Value.Status == HealthStatus.Healthy, e.Value.Description ?? ""));
        return context.Response.WriteAsJsonAsync(new HealthAnswer(ready ? "Ready" : "NotReady", [.. checks]), HealthJson.Default.HealthAnswer);
    }

    internal sealed record LiveAnswer(string Status);

    internal sealed record HealthEntry(string Name, bool Ready, string Detail);

    internal sealed record HealthAnswer(string Status, IReadOnlyList<HealthEntry> Checks);
}

/// <summary>The probes' JSON, generated at build time.</summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(ServiceDefaultsExtensions.LiveAnswer))]
[JsonSerializable(typeof(ServiceDefaultsExtensions.HealthAnswer))]
internal sealed partial class HealthJson : JsonSerializerContext;
