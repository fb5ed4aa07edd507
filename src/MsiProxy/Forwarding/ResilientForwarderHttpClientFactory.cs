using System.Diagnostics;
using Microsoft.Extensions.Http.Resilience;
using MsiProxy.Upstreams;
using Polly.Registry;
using Yarp.ReverseProxy.Forwarder;

namespace MsiProxy.Forwarding;

/// <summary>
/// YARP's HTTP client for forwarded requests, wrapped in the same resilience pipeline (and so the same upstream
/// limits) as token fetches. YARP itself has no retries; forwarded requests are bodiless GETs, so replay is safe.
/// </summary>
public sealed class ResilientForwarderHttpClientFactory(ResiliencePipelineProvider<string> pipelines, UpstreamResilience resilience,
    ILogger<ForwarderHttpClientFactory> logger) : ForwarderHttpClientFactory(logger)
{
    protected override void ConfigureHandler(ForwarderHttpClientContext context, SocketsHttpHandler handler)
    {
        base.ConfigureHandler(context, handler);
        UpstreamHttp.Configure(handler);
        handler.ActivityHeadersPropagator = new ImdsAwarePropagator(handler.ActivityHeadersPropagator ?? DistributedContextPropagator.Current);
    }

    // The shared pipeline (budget, retry, limits) outside; inside it, each attempt goes through the breaker and attempt
    // timeout of the upstream YARP picked.
    protected override HttpMessageHandler WrapHandler(ForwarderHttpClientContext context, HttpMessageHandler handler) =>
        new ResilienceHandler(pipelines.GetPipeline<HttpResponseMessage>(UpstreamResilience.PipelineName))
        {
            InnerHandler = new ResilienceHandler(request => resilience.ForUpstream(request.RequestUri!.GetLeftPart(UriPartial.Authority)))
            {
                InnerHandler = handler,
            },
        };
}

/// <summary>Socket settings for every connection to an upstream.</summary>
public static class UpstreamHttp
{
    public static SocketsHttpHandler Configure(SocketsHttpHandler handler)
    {
        // IMDS must be reached directly: never through an environment proxy, never following redirects or keeping cookies.
        handler.UseProxy = false;
        handler.AllowAutoRedirect = false;
        handler.UseCookies = false;
        handler.AutomaticDecompression = System.Net.DecompressionMethods.None;
        // A link-local upstream either answers at once or not at all.
        handler.ConnectTimeout = TimeSpan.FromSeconds(2);
        // So a re-created msiserviceclient behind a DNS name is picked up.
        handler.PooledConnectionLifetime = TimeSpan.FromMinutes(2);
        return handler;
    }

    public static SocketsHttpHandler Create() => Configure(new SocketsHttpHandler
    {
        ActivityHeadersPropagator = new ImdsAwarePropagator(DistributedContextPropagator.Current),
    });
}
