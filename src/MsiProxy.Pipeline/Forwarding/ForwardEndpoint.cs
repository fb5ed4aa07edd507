using MsiProxy.Requests;
using MsiProxy.Responses;
using MsiProxy.Upstreams;

namespace MsiProxy.Forwarding;

/// <summary>
/// Every endpoint of the table but the token one, after the gate: the request the proxy builds from the checked path
/// and query goes through the one upstream client — shared for a few seconds between identical requests where the
/// answer is the VM's and the same for every caller — and the upstream's answer passes through, with user data taken
/// out of instance documents for clients that may not read it.
/// </summary>
internal sealed class ForwardEndpoint(UpstreamClient upstream, SharedAnswers shared, EndpointAccess access)
{
    public async ValueTask<Decision> DecideAsync(ImdsRequest request)
    {
        var upstreamRequest = UpstreamRequest.Waiting(request.UpstreamTarget(), request.Client.Name, request.Headers);
        var (response, wasShared) = request.Endpoint.SharedAnswer
            ? await shared.GetAsync(upstreamRequest.Target, () => upstream.SendAsync(upstreamRequest, CancellationToken.None)).ConfigureAwait(false)
            : (await upstream.SendAsync(upstreamRequest, CancellationToken.None).ConfigureAwait(false), false);

        var outcome = response.ProxyError switch
        {
            "queue_full" or "over_budget" or "expired" => RequestOutcome.Throttled,
            not null => RequestOutcome.UpstreamError,
            _ => wasShared ? RequestOutcome.ForwardedShared : RequestOutcome.Forwarded,
        };
        var answer = BodyAnswer.From(response);
        if (response.IsSuccess && !access.MayUse(request.Client, ImdsEndpoints.UserData) && UserDataFilter.Applies(request))
        {
            answer = UserDataFilter.Remove(request, answer);
        }

        return new Decision(outcome, answer)
        {
            Client = request.Client, Endpoint = request.Endpoint, Path = request.Path, Upstream = response.Upstream, Reason = response.ProxyError,
        };
    }
}
