using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using MsiProxy.Caching;
using MsiProxy.Clients;
using MsiProxy.Configuration;
using MsiProxy.Docker;
using MsiProxy.Forwarding;
using MsiProxy.Kubernetes;
using MsiProxy.Management;
using MsiProxy.Telemetry;
using MsiProxy.Tokens;
using MsiProxy.Upstreams;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Polly;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.Transforms;

namespace MsiProxy.Hosting;

public static class MsiProxyServiceExtensions
{
    /// <summary>Registers the proxy: options, listeners, the client registry, the token cache, upstreams and YARP.</summary>
    public static WebApplicationBuilder AddMsiProxy(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        var section = builder.Configuration.GetSection(MsiProxyOptions.SectionName);
        services.AddOptions<MsiProxyOptions>().Bind(section).ValidateOnStart();
        services.AddSingleton<IValidateOptions<MsiProxyOptions>, MsiProxyOptionsValidator>();
        services.TryAddSingleton(TimeProvider.System);

        // Listeners are read from the final configuration (so --demo and tests can add to it after this call).
        services.AddSingleton(sp => Listeners.FromConfiguration(sp.GetRequiredService<IConfiguration>()));
        services.AddOptions<KestrelServerOptions>().Configure<Listeners>((kestrel, listeners) =>
        {
            listeners.Configure(kestrel);
            // Deliberate limits: IMDS requests are short GETs. Anything larger is refused by Kestrel (414/431/413).
            kestrel.Limits.MaxRequestLineSize = 8 * 1024;
            kestrel.Limits.MaxRequestHeadersTotalSize = 16 * 1024;
            kestrel.Limits.MaxRequestHeaderCount = 64;
            kestrel.Limits.MaxRequestBodySize = 64 * 1024;
            kestrel.Limits.RequestHeadersTimeout = TimeSpan.FromSeconds(10);
            kestrel.AddServerHeader = false;
        });

        // Who may call
        services.AddSingleton<ClientRegistry>();
        services.AddHostedService<ConfiguredClients>();
        builder.AddKubernetesDiscovery();

        // Tokens: cache, per-client fairness, prefetch, purge on deregistration
        services.AddSingleton<TokenCache>();
        services.AddSingleton<ClientRateLimiter>();
        services.AddSingleton<TokenEndpoint>();
        services.AddSingleton<AuditLog>();
        services.AddHostedService<TokenPrefetcher>();
        services.AddHostedService<DeregistrationPurge>();

        // Upstreams: resilience, the token client, YARP for everything else
        services.AddSingleton<UpstreamResilience>();
        services.AddResiliencePipeline<string, HttpResponseMessage>(UpstreamResilience.PipelineName,
            (pipeline, context) => context.ServiceProvider.GetRequiredService<UpstreamResilience>().Configure(pipeline));
        services.AddHttpClient(UpstreamTokenClient.HttpClientName, http =>
            {
                http.Timeout = Timeout.InfiniteTimeSpan; // the resilience pipeline owns every timeout
                http.MaxResponseContentBufferSize = 256 * 1024;
            })
            .ConfigurePrimaryHttpMessageHandler(UpstreamHttp.Create);
        services.AddSingleton<UpstreamTokenClient>();
        services.AddSingleton<UpstreamSetAccessor>();
        services.AddSingleton(sp =>
        {
            var set = ActivatorUtilities.CreateInstance<UpstreamSet>(sp);
            sp.GetRequiredService<UpstreamSetAccessor>().Value = set;
            return set;
        });
        UpstreamReadiness.AddProbeClient(services);
        services.AddSingleton<IReadinessCheck, UpstreamReadiness>();

        services.AddSingleton(sp =>
        {
            var options = sp.GetRequiredService<IOptions<MsiProxyOptions>>().Value;
            return new InMemoryConfigProvider(UpstreamSet.BuildRoutes(), [UpstreamSet.BuildCluster(options.EffectiveUpstreams, options)]);
        });
        services.AddSingleton<IProxyConfigProvider>(sp => sp.GetRequiredService<InMemoryConfigProvider>());
        services.AddReverseProxy()
            .AddTransforms(transforms =>
            {
                // IMDS rejects any request with X-Forwarded-For; "Remove" also drops what a client sent, and Forwarded.
                transforms.AddXForwarded(ForwardedTransformActions.Remove);
                transforms.AddRequestTransform(ConnectionListedHeaders.RemoveAsync);
                transforms.AddRequestHeader("Metadata", "true", append: false);
                transforms.AddRequestHeaderRemove("Cookie");
                transforms.AddResponseHeaderRemove("Set-Cookie");
            });
        services.AddSingleton<IForwarderHttpClientFactory, ResilientForwarderHttpClientFactory>();
        services.AddSingleton<IProbingRequestFactory, ImdsProbingRequestFactory>();
        services.AddSingleton<IActiveHealthCheckPolicy, UpstreamProbePolicy>();

        builder.AddDockerMonitor(); // only when MsiProxy:Docker:Endpoint is set
        return builder;
    }
}
