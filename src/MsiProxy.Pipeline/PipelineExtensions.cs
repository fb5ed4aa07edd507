using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using MsiProxy.Caching;
using MsiProxy.Clients;
using MsiProxy.Configuration;
using MsiProxy.Forwarding;
using MsiProxy.Management;
using MsiProxy.Requests;
using MsiProxy.Routing;
using MsiProxy.ServiceDefaults;
using MsiProxy.Telemetry;
using MsiProxy.Tokens;
using MsiProxy.Upstreams;
using MsiProxy.Upstreams.Scheduling;
using Polly;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Health;

namespace MsiProxy;

/// <summary>The request pipeline's composition: what <c>AddMsiProxyPipeline</c> registers, what <c>MapMsiProxyPipeline</c> serves.</summary>
public static class PipelineExtensions
{
    /// <summary>Registers the proxy: options, listeners, the client registry, the gate, the endpoints, the cache and the upstream client.</summary>
    public static WebApplicationBuilder AddMsiProxyPipeline(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        var section = builder.Configuration.GetSection(MsiProxyOptions.SectionName);
        // Bound as Bind(section) would, but the clients in one pass (ClientsConfiguration); reloads follow the section.
        var configuration = builder.Configuration;
        services.AddOptions<MsiProxyOptions>().BindChecked(section, (_, options) => ClientsConfiguration.Bind(configuration, section, options)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<MsiProxyOptions>, MsiProxyOptionsValidator>();
        // One binding for both: IOptions<T> would otherwise bind and validate a copy of its own beside the monitor's
        // (with 10,000 configured clients, a second 10,000-client list and a second pass of the binder at start-up).
        services.AddSingleton<IOptions<MsiProxyOptions>>(sp => Options.Create(sp.GetRequiredService<IOptionsMonitor<MsiProxyOptions>>().CurrentValue));
        services.TryAddSingleton(TimeProvider.System);

        // SIGTERM: /readyz false first, then the server drains, all within Shutdown:DrainTimeout.
        services.AddOptions<HostOptions>().Configure<IOptions<MsiProxyOptions>>((host, proxy) => host.ShutdownTimeout = proxy.Value.Shutdown.DrainTimeout);
        services.AddSingleton<ShutdownDrain>();
        services.AddHostedService(sp => sp.GetRequiredService<ShutdownDrain>());
        services.AddHealthChecks().AddCheck<ShutdownDrain>(ShutdownDrain.Name, tags: [ServiceDefaultsExtensions.ReadyTag]);

        // Listeners are read from the final configuration (so the demo and tests can add to it after this call).
        services.AddSingleton(sp => Listeners.FromConfiguration(sp.GetRequiredService<IConfiguration>()));
        services.AddOptions<KestrelServerOptions>().Configure<Listeners>((kestrel, listeners) =>
        {
            listeners.Configure(kestrel);
            // Deliberate limits: IMDS requests are short GETs. Anything larger is refused by Kestrel (414/431/413).
            kestrel.Limits.MaxRequestLineSize = 8 * 1024;
            kestrel.Limits.MaxRequestHeadersTotalSize = 16 * 1024;
            kestrel.Limits.MaxRequestHeaderCount = 64;
            kestrel.Limits.MaxRequestBodySize = RequestGate.MaxRequestBodySize;
            kestrel.Limits.RequestHeadersTimeout = TimeSpan.FromSeconds(10);
            kestrel.AddServerHeader = false;
        });

        // Who may call, and what they may ask for
        services.AddSingleton<ClientRegistry>();
        services.AddHostedService<ConfiguredClients>();
        // After the configured clients, before the listeners open: what the admin API registered before a restart.
        services.AddSingleton<AdminState>();
        services.AddHostedService(sp => sp.GetRequiredService<AdminState>());
        // The admin API's answers (Results.Ok…) serialize with metadata generated at build time, not by reflection.
        services.ConfigureHttpJsonOptions(json => json.SerializerOptions.TypeInfoResolverChain.Insert(0, ManagementJson.Default));
        services.AddSingleton<EndpointAccess>();
        services.AddSingleton<RequestGate>(); // with the container monitor's ICallerDiscovery when one is registered

        // The client listener: the routing table and its one wrapper
        services.AddSingleton<ClientRequests>();
        services.AddSingleton<RequestRecorder>();
        services.AddSingleton<MsiProxyTelemetry>();
        services.AddHostedService<StateGauges>();

        // Tokens: cache, prefetch, purge on deregistration
        services.AddSingleton<TokenCache>();
        services.AddSingleton<TokenEndpoint>();
        services.AddHostedService<TokenPrefetcher>();
        services.AddHostedService<DeregistrationPurge>();

        // Everything else in the endpoint table
        services.AddSingleton<ForwardEndpoint>();
        services.AddSingleton<SharedAnswers>();

        // The one way upstream: resilience pipeline + HTTP client; YARP keeps the upstream set and probes it
        services.AddSingleton(sp => new UpstreamScheduler(
            UpstreamSchedulerOptions.From(sp.GetRequiredService<IOptions<MsiProxyOptions>>().Value.Resilience), sp.GetRequiredService<TimeProvider>()));
        services.AddSingleton<UpstreamResilience>();
        services.AddResiliencePipeline<string, HttpResponseMessage>(UpstreamResilience.PipelineName,
            (pipeline, context) => context.ServiceProvider.GetRequiredService<UpstreamResilience>().Configure(pipeline));
        services.AddHttpClient(UpstreamClient.HttpClientName, http =>
            {
                http.Timeout = Timeout.InfiniteTimeSpan; // the resilience pipeline owns every timeout
                http.MaxResponseContentBufferSize = UpstreamClient.MaxResponseBytes;
            })
            .ConfigurePrimaryHttpMessageHandler(UpstreamHttp.Create)
            // IHttpClientFactory's two logging handlers log at Information, under the Warning their category runs at,
            // yet open a logging scope on every call: the upstream attempt's span and the proxy's own events say more.
            .RemoveAllLoggers();
        services.AddSingleton<UpstreamClient>();
        services.AddSingleton<UpstreamSetAccessor>();
        services.AddSingleton(sp =>
        {
            var set = ActivatorUtilities.CreateInstance<UpstreamSet>(sp);
            sp.GetRequiredService<UpstreamSetAccessor>().Value = set;
            return set;
        });
        UpstreamReadiness.AddProbeClient(services);
        services.AddHealthChecks().AddCheck<UpstreamReadiness>(UpstreamReadiness.Name, tags: [ServiceDefaultsExtensions.ReadyTag]);

        services.AddSingleton(sp =>
        {
            var options = sp.GetRequiredService<IOptions<MsiProxyOptions>>().Value;
            return new InMemoryConfigProvider([], [UpstreamSet.BuildCluster(options.EffectiveUpstreams, options)]);
        });
        services.AddSingleton<IProxyConfigProvider>(sp => sp.GetRequiredService<InMemoryConfigProvider>());
        services.AddReverseProxy();
        WithoutRouteServices(services);
        services.AddSingleton<IForwarderHttpClientFactory, ProbeHttpClientFactory>();
        services.AddSingleton<IProbingRequestFactory, ImdsProbingRequestFactory>();
        services.AddSingleton<IActiveHealthCheckPolicy, UpstreamProbePolicy>();
        return builder;
    }

    /// <summary>
    /// <c>AddReverseProxy</c> also registers what YARP's routes could use; the proxy maps none, and two of them cost on
    /// every start and every request. Authorization's services make <see cref="WebApplication"/> put its middleware in
    /// front of the whole pipeline, client port included: it is run on every request, and at start-up it builds every
    /// endpoint the management listener has (~60 ms of a ~450 ms start to first token). Data protection, for the
    /// session-affinity cookie, loaded a key ring at every start (~20 ms, System.Private.Xml mapped) and on the first
    /// wrote an unencrypted key to <c>$HOME/.aspnet</c>: its hosted service goes, and the affinity policies (which YARP's
    /// configuration validator builds, and nothing calls) get keys that live in memory only, made on first use
    /// (<see cref="DeferredDataProtection"/>). The authorization policy provider stays for the same validator.
    /// </summary>
    private static void WithoutRouteServices(IServiceCollection services)
    {
        // With it go the two services built on it: left behind, Development's build-time validation refuses them.
        services.RemoveAll<Microsoft.AspNetCore.Authorization.IAuthorizationHandlerProvider>();
        services.RemoveAll<Microsoft.AspNetCore.Authorization.IAuthorizationService>();
        services.RemoveAll<Microsoft.AspNetCore.Authorization.Policy.IPolicyEvaluator>();
        services.AddSingleton<Microsoft.AspNetCore.DataProtection.IDataProtectionProvider>(new DeferredDataProtection(
            () => new Microsoft.AspNetCore.DataProtection.EphemeralDataProtectionProvider().CreateProtector("MsiProxy")));
        for (var i = services.Count - 1; i >= 0; i--)
        {
            if (services[i] is { ServiceType: var type, IsKeyedService: false } hosted && type == typeof(IHostedService)
                && hosted.ImplementationType?.FullName == "Microsoft.AspNetCore.DataProtection.Internal.DataProtectionHostedService")
            {
                services.RemoveAt(i);
            }
        }
    }

    /// <summary>
    /// The two listeners. A connection accepted on the client listener is answered by <see cref="ClientRequests"/> —
    /// nothing else, whatever its path or Host header: the routing table is there. The management listener serves
    /// /healthz, /readyz, /metrics and /admin/*, and none of them exists on the client port.
    /// </summary>
    /// <returns>The admin API's route group, for the discoveries' own read-only views.</returns>
    public static RouteGroupBuilder MapMsiProxyPipeline(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var client = app.Services.GetRequiredService<ClientRequests>();
        app.UseWhen(context => !context.IsManagementConnection(), listener => listener.Run(client.HandleAsync));
        app.UseRouting();
        app.MapDefaultEndpoints();
        // YARP keeps the upstream set (ordered destinations, active probes, passive health); mapping it with no routes is
        // what starts that. It forwards nothing: docs/architecture.md says why.
        app.MapReverseProxy();
        return app.MapAdminApi();
    }
}

/// <summary>
/// Data protection whose key is made when something first protects or unprotects: YARP's affinity policies take their
/// protectors when they are built and, with no routes, never use them. A key made at start-up loaded OpenSSL for its
/// random bytes (libssl and libcrypto, ~3.5 MB resident) into a process that otherwise may never need it.
/// </summary>
internal sealed class DeferredDataProtection(Func<Microsoft.AspNetCore.DataProtection.IDataProtector> create)
    : Microsoft.AspNetCore.DataProtection.IDataProtector
{
    private readonly Lazy<Microsoft.AspNetCore.DataProtection.IDataProtector> _protector = new(create);

    public Microsoft.AspNetCore.DataProtection.IDataProtector CreateProtector(string purpose) =>
        new DeferredDataProtection(() => _protector.Value.CreateProtector(purpose));

    public byte[] Protect(byte[] plaintext) => _protector.Value.Protect(plaintext);

    public byte[] Unprotect(byte[] protectedData) => _protector.Value.Unprotect(protectedData);
}
