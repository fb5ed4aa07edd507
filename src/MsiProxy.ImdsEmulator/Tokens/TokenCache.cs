namespace MsiProxy.ImdsEmulator.Tokens;

/// <summary>
/// IMDS caches a token per (identity, resource) and serves it again with expires_in counting down. The emulator
/// re-mints before the client-side 5-minute expiry buffer (or half the lifetime for short test lifetimes), so it
/// never serves a token clients would consider already expired.
/// </summary>
internal sealed class TokenCache(ITokenMinter minter, TimeProvider time)
{
    private static readonly TimeSpan ClientExpiryBuffer = TimeSpan.FromMinutes(5);

    private readonly Lock _gate = new();
    private readonly Dictionary<(string Identity, string Resource), IssuedToken> _tokens = [];

    /// <returns>The token and whether it was newly minted.</returns>
    public (IssuedToken Token, bool Minted) GetOrMint(ManagedIdentity identity, string resource, bool bypassCache)
    {
        var key = (identity.Key, resource);
        lock (_gate)
        {
            if (!bypassCache && _tokens.TryGetValue(key, out var cached) && IsFresh(cached))
            {
                return (cached, false);
            }

            var minted = minter.Mint(identity, resource);
            _tokens[key] = minted;
            return (minted, true);
        }
    }

    public void Clear()
    {
        lock (_gate)
        {
            _tokens.Clear();
        }
    }

    private bool IsFresh(IssuedToken token)
    {
        var refreshMargin = token.Lifetime / 2 < ClientExpiryBuffer ? token.Lifetime / 2 : ClientExpiryBuffer;
        return token.ExpiresOn - time.GetUtcNow() > refreshMargin;
    }
}
