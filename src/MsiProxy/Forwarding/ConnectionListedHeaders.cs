using Yarp.ReverseProxy.Transforms;

namespace MsiProxy.Forwarding;

/// <summary>
/// Headers a client names in its <c>Connection</c> header are hop-by-hop (RFC 9110 §7.6.1) and must not be
/// forwarded. YARP drops the fixed hop-by-hop set but not these, so a client could pass any header to IMDS by
/// listing it. Runs before the proxy adds its own headers, so it can never remove <c>Metadata: true</c>.
/// </summary>
public static class ConnectionListedHeaders
{
    public static ValueTask RemoveAsync(RequestTransformContext context)
    {
        foreach (var value in context.HttpContext.Request.Headers.Connection)
        {
            foreach (var name in (value ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                context.ProxyRequest.Headers.Remove(name);
                context.ProxyRequest.Content?.Headers.Remove(name);
            }
        }

        return ValueTask.CompletedTask;
    }
}
