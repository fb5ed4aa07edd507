using MsiProxy.Requests;
using Polly.CircuitBreaker;
using Polly.Timeout;
using Yarp.ReverseProxy.Forwarder;

namespace MsiProxy.Forwarding;

/// <summary>
/// A step in YARP's proxy pipeline: records which upstream served a forwarded request and turns YARP's bare
/// error statuses into IMDS-style JSON (502 unreachable, 504 timeout, 503 nothing available or circuit open).
/// Upstream answers — 4xx and 5xx included — pass through untouched.
/// </summary>
public static class ForwardingErrors
{
    public static async Task InvokeAsync(HttpContext context, Func<Task> next)
    {
        var request = context.GetProxyRequest();
        await next();
        var proxied = context.Features.Get<Yarp.ReverseProxy.Model.IReverseProxyFeature>()?.ProxiedDestination;
        if (request is not null)
        {
            request.Upstream = proxied?.Model.Config.Address.TrimEnd('/');
            request.Outcome = "forwarded";
        }

        var error = context.Features.Get<IForwarderErrorFeature>();
        if (error is null || context.Response.HasStarted)
        {
            return;
        }

        if (request is not null)
        {
            request.Outcome = "error";
        }

        var (status, code, description, retryAfter) = error.Exception switch
        {
            BrokenCircuitException => (503, "service_unavailable", "The upstream is failing; the proxy is not sending requests to it for now", TimeSpan.FromSeconds(5)),
            TimeoutRejectedException => (504, "gateway_timeout", "The upstream did not answer in time", (TimeSpan?)null),
            _ when error.Error == ForwarderError.NoAvailableDestinations => (503, "service_unavailable", "No upstream is available", TimeSpan.FromSeconds(5)),
            _ when error.Error == ForwarderError.RequestTimedOut => (504, "gateway_timeout", "The upstream did not answer in time", null),
            _ => (502, "bad_gateway", "The upstream could not be reached", null),
        };
        await ImdsErrors.WriteAsync(context, status, code, description, retryAfter);
    }
}
