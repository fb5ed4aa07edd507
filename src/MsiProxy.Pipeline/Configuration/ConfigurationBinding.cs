using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace MsiProxy.Configuration;

/// <summary>
/// The configuration binder refuses a value it cannot convert (<c>Cache:MaxEntries=lots</c>) with an
/// <see cref="InvalidOperationException"/> whose message already names value, key and type. Start-up reports only
/// <see cref="ConfigurationException"/> as a configuration error, so without this an operator's typo was an unhandled
/// exception and a core dump (exit 134) instead of exit 2 and that message.
/// </summary>
public static class ConfigurationBinding
{
    /// <summary>
    /// Binds <typeparamref name="TOptions"/> from <paramref name="section"/> with <paramref name="bind"/>, reloading with
    /// it as <c>Bind(section)</c> does. <paramref name="bind"/> is a lambda at the call site (<c>(s, o) =&gt; s.Bind(o)</c>)
    /// because the binder's source generator writes code only for calls whose type it can see.
    /// </summary>
    public static OptionsBuilder<TOptions> BindChecked<TOptions>(this OptionsBuilder<TOptions> builder, IConfiguration section, Action<IConfiguration, TOptions> bind)
        where TOptions : class
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddSingleton<IOptionsChangeTokenSource<TOptions>>(new ConfigurationChangeTokenSource<TOptions>(builder.Name, section));
        return builder.Configure(options => Checked(() => bind(section, options)));
    }

    /// <summary>Runs one binder call; a value the binder refused becomes a <see cref="ConfigurationException"/> with its message.</summary>
    public static void Checked(Action bind)
    {
        ArgumentNullException.ThrowIfNull(bind);
        try
        {
            bind();
        }
        catch (InvalidOperationException ex) when (ex.InnerException is not null)
        {
            // Only the binder's own failure carries the conversion's exception inside ("Failed to convert configuration
            // value 'lots' at 'MsiProxy:Cache:MaxEntries' to type 'System.Int32'.").
            throw new ConfigurationException(ex.Message, ex);
        }
    }
}
