using System.Buffers;
using System.Globalization;
using System.IO.Pipelines;
using System.Net;
using System.Runtime.CompilerServices;
using System.Text.Json;

namespace MsiProxy.Kubernetes.Api;

/// <summary>
/// The three calls the proxy makes to the API server, over one HttpClient: list and watch this node's pods, get one
/// Secret. Written here rather than taken from KubernetesClient, whose watch works by reflection (no Native AOT) and
/// which loaded ~2 MB of code and its generated models into every proxy with discovery on.
/// </summary>
internal sealed class KubernetesApi : IDisposable
{
    private const int MaxSecretBytes = 4 * 1024 * 1024; // the API server's limit is 1 MiB of data, as base64 in JSON

    // etcd stores objects of up to 1.5 MiB; a watch line is one of them in JSON. A line longer than this is not an
    // event, and reading on for its newline would hold everything the server sends in memory.
    private const int MaxWatchLineBytes = 8 * 1024 * 1024;

    private static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(100); // a list or a get; a watch ends when the server ends it

    private readonly KubernetesConnection _connection;
    private readonly HttpClient _http;

    public KubernetesApi(KubernetesConnection connection)
    {
        _connection = connection;
        _http = new HttpClient(connection.CreateHandler()) { BaseAddress = connection.Server, Timeout = Timeout.InfiniteTimeSpan };
    }

    /// <summary><c>GET /api/v1/pods?fieldSelector=…</c>.</summary>
    /// <exception cref="KubernetesApiException">The server answered with an error status.</exception>
    public async Task<ApiPodList> ListPodsAsync(string fieldSelector, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(CallTimeout);
        using var response = await SendAsync($"api/v1/pods?fieldSelector={Uri.EscapeDataString(fieldSelector)}", HttpCompletionOption.ResponseContentRead, timeout.Token)
            .ConfigureAwait(false);
        var body = await response.Content.ReadAsStreamAsync(timeout.Token).ConfigureAwait(false);
        return await JsonSerializer.DeserializeAsync(body, KubernetesJson.Default.ApiPodList, timeout.Token).ConfigureAwait(false)
            ?? throw new FormatException("The pod list is null");
    }

    /// <summary>
    /// <c>GET /api/v1/pods?watch=true&amp;…</c> from <paramref name="resourceVersion"/>: one event per line until the server
    /// ends the stream (after <paramref name="timeoutSeconds"/>, or sooner).
    /// </summary>
    /// <exception cref="KubernetesApiException">The server refused the watch (410 when the version is too old).</exception>
    /// <exception cref="FormatException">A line is not a watch event, or is longer than any event.</exception>
    public async IAsyncEnumerable<ApiWatchLine> WatchPodsAsync(string fieldSelector, string resourceVersion, int timeoutSeconds,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var query = string.Create(CultureInfo.InvariantCulture,
            $"api/v1/pods?watch=true&allowWatchBookmarks=true&fieldSelector={Uri.EscapeDataString(fieldSelector)}&resourceVersion={Uri.EscapeDataString(resourceVersion)}&timeoutSeconds={timeoutSeconds}");
        using var response = await SendAsync(query, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        var lines = PipeReader.Create(await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false));
        try
        {
            while (true)
            {
                var read = await lines.ReadAsync(cancellationToken).ConfigureAwait(false);
                var buffer = read.Buffer;
                while (buffer.PositionOf((byte)'\n') is { } end)
                {
                    var line = buffer.Slice(0, end);
                    buffer = buffer.Slice(buffer.GetPosition(1, end));
                    if (WatchLine(line) is { } parsed)
                    {
                        yield return parsed;
                    }
                }

                if (buffer.Length > MaxWatchLineBytes)
                {
                    throw new FormatException($"A watch line is over {MaxWatchLineBytes} bytes, more than any object the API server stores");
                }

                if (read.IsCompleted)
                {
                    if (WatchLine(buffer) is { } last)
                    {
                        yield return last; // a final line without its newline
                    }

                    yield break;
                }

                lines.AdvanceTo(buffer.Start, buffer.End);
            }
        }
        finally
        {
            await lines.CompleteAsync().ConfigureAwait(false);
        }
    }

    /// <summary>One line of a watch (null when blank), parsed from its UTF-8 bytes.</summary>
    private static ApiWatchLine? WatchLine(ReadOnlySequence<byte> line)
    {
        if (line.Length > 0 && line.Slice(line.Length - 1).FirstSpan[0] == (byte)'\r')
        {
            line = line.Slice(0, line.Length - 1);
        }

        if (line.IsEmpty)
        {
            return null;
        }

        ApiWatchLine? parsed;
        try
        {
            var reader = new Utf8JsonReader(line);
            parsed = JsonSerializer.Deserialize(ref reader, KubernetesJson.Default.ApiWatchLine);
        }
        catch (JsonException ex)
        {
            throw new FormatException($"A watch line is not JSON: {ex.Message}", ex);
        }

        return parsed is { Type: not null, Object.ValueKind: JsonValueKind.Object }
            ? parsed
            : throw new FormatException("A watch line has no type or no object");
    }

    /// <summary>
    /// <c>GET /api/v1/namespaces/{namespace}/secrets/{name}</c>. The body is read into buffers of ours, each cleared once
    /// done with, so no copy of the Secret's values outlives the call but the one returned (the caller clears it).
    /// Secrets are at most 1 MiB (the API server's limit).
    /// </summary>
    /// <exception cref="KubernetesApiException">The server answered with an error status (404 missing, 403 not allowed).</exception>
    public async Task<ApiSecret> ReadSecretAsync(string @namespace, string name, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(CallTimeout);
        using var response = await SendAsync($"api/v1/namespaces/{Uri.EscapeDataString(@namespace)}/secrets/{Uri.EscapeDataString(name)}",
            HttpCompletionOption.ResponseHeadersRead, timeout.Token).ConfigureAwait(false);
        // Streamed into our own buffer, not HttpClient's (which would keep an uncleared copy until collected).
        var stream = await response.Content.ReadAsStreamAsync(timeout.Token).ConfigureAwait(false);
        var body = new byte[16 * 1024];
        var length = 0;
        try
        {
            int read;
            while ((read = await stream.ReadAsync(body.AsMemory(length), timeout.Token).ConfigureAwait(false)) > 0)
            {
                length += read;
                if (length == body.Length)
                {
                    if (length >= MaxSecretBytes)
                    {
                        throw new FormatException($"The Secret is over {MaxSecretBytes} bytes, more than the API server stores");
                    }

                    var larger = new byte[body.Length * 2];
                    body.CopyTo(larger, 0);
                    Array.Clear(body);
                    body = larger;
                }
            }

            return JsonSerializer.Deserialize(body.AsSpan(0, length), KubernetesJson.Default.ApiSecret) ?? throw new FormatException("The Secret is null");
        }
        finally
        {
            Array.Clear(body);
        }
    }

    public void Dispose() => _http.Dispose();

    /// <summary>Sends a GET with the connection's credentials; an error status becomes a <see cref="KubernetesApiException"/> with the server's message.</summary>
    private async Task<HttpResponseMessage> SendAsync(string pathAndQuery, HttpCompletionOption completion, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, pathAndQuery);
        request.Headers.Authorization = await _connection.AuthorizationAsync(cancellationToken).ConfigureAwait(false);
        request.Headers.Accept.ParseAdd("application/json");
        var response = await _http.SendAsync(request, completion, cancellationToken).ConfigureAwait(false);
        if (response.IsSuccessStatusCode)
        {
            return response;
        }

        using (response)
        {
            throw new KubernetesApiException(response.StatusCode, await ReadStatusMessageAsync(response, cancellationToken).ConfigureAwait(false));
        }
    }

    private static async Task<string?> ReadStatusMessageAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        try
        {
            var body = await response.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false);
            return JsonSerializer.Deserialize(body, KubernetesJson.Default.ApiStatus)?.Message;
        }
        catch (JsonException)
        {
            return null; // not a Status (a proxy's HTML page, say): the status code says enough
        }
    }
}

/// <summary>The API server answered a call, or ended a watch, with an error (its HTTP status or the ERROR event's Status code).</summary>
internal sealed class KubernetesApiException : Exception
{
    public KubernetesApiException()
    {
    }

    public KubernetesApiException(string message)
        : base(message)
    {
    }

    public KubernetesApiException(string message, Exception inner)
        : base(message, inner)
    {
    }

    public KubernetesApiException(HttpStatusCode status, string? serverMessage)
        : base($"The API server answered HTTP {(int)status}{(serverMessage is null ? "" : ": " + serverMessage)}")
    {
        Status = status;
        ServerMessage = serverMessage;
    }

    public HttpStatusCode? Status { get; }

    public string? ServerMessage { get; }
}
