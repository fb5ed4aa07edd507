using System.Diagnostics.Metrics;
using MsiProxy.Caching;
using MsiProxy.Clients;
using MsiProxy.Upstreams;
using OpenTelemetry;
using OpenTelemetry.Logs;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using Serilog;
using Serilog.Events;
using Serilog.Formatting.Compact;

namespace MsiProxy.Telemetry;

/// <summary>
/// Cross-cutting defaults in one place: Serilog (compact JSON on the console, also written through to
/// OpenTelemetry logs), OpenTelemetry traces and metrics, OTLP export when <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is set,
/// and the Prometheus exporter behind <c>/metrics</c> on the management listener.
/// </summary>
internal static class TelemetryExtensions
{
    public static WebApplicationBuilder AddMsiProxyTelemetry(this WebApplicationBuilder builder)
    {
        builder.Services.AddSingleton<MsiProxyTelemetry>();
        builder.Services.AddHostedService<StateGauges>();

        builder.Logging.ClearProviders();
        builder.Logging.AddOpenTelemetry(logging =>
        {
            logging.IncludeFormattedMessage = true;
            logging.IncludeScopes = true;
        });
        builder.Services.AddSerilog((services, logger) => logger
            .MinimumLevel.Information()
            .MinimumLevel.Override("Microsoft.AspNetCore", LogEventLevel.Warning)
            .MinimumLevel.Override("Microsoft.Extensions.Http", LogEventLevel.Warning)
            .MinimumLevel.Override("System.Net.Http", LogEventLevel.Warning)
            .MinimumLevel.Override("Yarp", LogEventLevel.Warning)
            .MinimumLevel.Override("Polly", LogEventLevel.Warning)
            .MinimumLevel.Override("Microsoft.AspNetCore.DataProtection", LogEventLevel.Error)
            .MinimumLevel.Override("Microsoft.AspNetCore.Server.Kestrel", LogEventLevel.Error)
            .ReadFrom.Configuration(builder.Configuration)
            .Enrich.FromLogContext()
            .WriteTo.Console(new RenderedCompactJsonFormatter()), preserveStaticLogger: true, writeToProviders: true);

        var exporting = !string.IsNullOrWhiteSpace(builder.Configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]);
        var otel = builder.Services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService(builder.Configuration["OTEL_SERVICE_NAME"] ?? "msiproxy"))
            .WithTracing(tracing =>
            {
                tracing
                    .AddSource(MsiProxyTelemetry.Name, "Yarp.ReverseProxy")
                    .AddAspNetCoreInstrumentation(o => o.Filter = context => !Hosting.ManagementConnectionExtensions.IsManagementConnection(context))
                    .AddHttpClientInstrumentation();
                if (SpanSampling.For(exporting, builder.Configuration["OTEL_TRACES_SAMPLER"]) is { } sampler)
                {
                    tracing.SetSampler(sampler);
                }
            })
            .WithMetrics(metrics => metrics
                .AddMeter(MsiProxyTelemetry.Name, "Polly")
                .AddAspNetCoreInstrumentation()
                .AddHttpClientInstrumentation()
                .AddRuntimeInstrumentation()
                .AddPrometheusExporter());
        if (exporting)
        {
            otel.UseOtlpExporter();
        }

        return builder;
    }
}

/// <summary>Observable gauges over live state: cache size, soonest token expiry, circuit, queue, registrations.</summary>
internal sealed class StateGauges(MsiProxyTelemetry telemetry, TokenCache cache, ClientRegistry registry, UpstreamResilience resilience,
    UpstreamSet upstreams, TimeProvider time) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        var meter = telemetry.Meter;
        meter.CreateObservableGauge("msiproxy.cache.entries", () => cache.Count, "{entry}", "Tokens in the cache.");
        meter.CreateObservableGauge("msiproxy.token.time_to_expiry", () => cache.EarliestExpiry() is { } e
            ? [new Measurement<double>((e - time.GetUtcNow()).TotalSeconds)] : Array.Empty<Measurement<double>>(),
            "s", "Time until the soonest cached token expires.");
        meter.CreateObservableGauge("msiproxy.upstream.circuit_state", () => resilience.CircuitStates.Select(c =>
            new Measurement<int>((int)c.Value, new KeyValuePair<string, object?>("msiproxy.upstream", c.Key))), "{state}",
            "Upstream circuit breaker: 0 closed, 1 open, 2 half-open, 3 isolated.");
        meter.CreateObservableGauge("msiproxy.upstream.queue_length", () => resilience.QueueLength, "{request}",
            "Requests waiting for an upstream slot.");
        meter.CreateObservableGauge("msiproxy.upstream.available", () => upstreams.Describe().Select(u =>
            new Measurement<int>(u.Available ? 1 : 0, new KeyValuePair<string, object?>("msiproxy.upstream", u.Address))),
            "{upstream}", "1 when an upstream is available to take traffic.");
        meter.CreateObservableGauge("msiproxy.clients.registered", () => registry.All.GroupBy(r => r.Source).Select(g =>
            new Measurement<int>(g.Count(), new KeyValuePair<string, object?>("msiproxy.source", g.Key))),
            "{client}", "Registered clients, by source.");
        meter.CreateObservableGauge("msiproxy.clients.ready", () => registry.All.Count(r => r.Ready), "{client}",
            "Registered clients that are wired and may call.");
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
