using TorchSharp;
using static TorchSharp.torch;

namespace Read.Domain.Backbones;

/// <summary>
/// Tensor arithmetic with numbers whose <see cref="Scalar"/>s stay alive until libtorch has read them. TorchSharp (0.107)
/// turns each number into a finalizable <see cref="Scalar"/> (the implicit conversions, and the alpha of 1 that
/// <c>add(tensor)</c>, <c>a + b</c> and <c>add(number)</c> pass) and hands libtorch only its native pointer: once that
/// is read nothing references the object, so a garbage collection started by any thread can finalize it, freeing the
/// c10::Scalar while the op still reads it. Under predict load that surfaced as a 500, "Expected false to be true" inside <see cref="Bert.BertModel.MaskBias"/>; a freed Scalar whose memory is reused could as well
/// be read as another number. Here each Scalar is either rooted for the process (<see cref="One"/>) or disposed after the
/// op, which keeps it alive until then. KeptScalarsTests fails when Read.Domain calls a TorchSharp member that makes a
/// Scalar it does not keep.
/// </summary>
internal static class KeptScalars
{
    /// <summary>Shared by every thread: a c10::Scalar is only read, and a static field is never finalized.</summary>
    private static readonly Scalar One = 1.ToScalar();

    /// <summary>a + b.</summary>
    public static Tensor Plus(this Tensor a, Tensor b) => a.add(b, One);

    /// <summary>x + value.</summary>
    public static Tensor Plus(this Tensor x, double value)
    {
        using var scalar = value.ToScalar();
        return x.add(scalar, One);
    }

    /// <summary>value − x.</summary>
    public static Tensor SubtractedFrom(this Tensor x, double value)
    {
        using var negated = x.negative();
        return negated.Plus(value);
    }

    /// <summary>x − value, for integer tensors (an integer Scalar keeps the dtype).</summary>
    public static Tensor Minus(this Tensor x, long value)
    {
        using var scalar = value.ToScalar();
        return x.sub(scalar);
    }

    /// <summary>x · value.</summary>
    public static Tensor Times(this Tensor x, double value)
    {
        using var scalar = value.ToScalar();
        return x.mul(scalar);
    }

    /// <summary>x · value, for integer tensors (an integer Scalar keeps the dtype).</summary>
    public static Tensor Times(this Tensor x, long value)
    {
        using var scalar = value.ToScalar();
        return x.mul(scalar);
    }

    /// <summary>⌊x / value⌋.</summary>
    public static Tensor FloorDivide(this Tensor x, long value)
    {
        using var scalar = value.ToScalar();
        return x.div(scalar, RoundingMode.floor);
    }

    /// <summary>x to the power <paramref name="exponent"/> (libtorch squares and cubes by multiplication).</summary>
    public static Tensor Power(this Tensor x, long exponent)
    {
        using var scalar = exponent.ToScalar();
        return x.pow(scalar);
    }

    /// <summary>max(x, min).</summary>
    public static Tensor AtLeast(this Tensor x, long min)
    {
        using var scalar = min.ToScalar();
        return x.clamp_min(scalar);
    }

    /// <summary>x with <paramref name="value"/> where <paramref name="mask"/> is true.</summary>
    public static Tensor Filled(this Tensor x, Tensor mask, double value)
    {
        using var scalar = value.ToScalar();
        return x.masked_fill(mask, scalar);
    }

    /// <summary>In place: adds <paramref name="source"/>'s rows into x's rows <paramref name="index"/> along <paramref name="dim"/>.</summary>
    public static Tensor IndexAdd_(this Tensor x, long dim, Tensor index, Tensor source) => x.index_add_(dim, index, source, One);

    /// <summary>0, 1, …, <paramref name="count"/> − 1.</summary>
    public static Tensor Range(long count, ScalarType dtype, Device device)
    {
        using var start = 0L.ToScalar();
        using var stop = count.ToScalar();
        return arange(start, stop, One, dtype, device);
    }

    /// <summary>x / value.</summary>
    public static Tensor DividedBy(this Tensor x, double value)
    {
        using var scalar = value.ToScalar();
        return x.div(scalar);
    }

    /// <summary>In place: x · value.</summary>
    public static Tensor MultiplyInPlace(this Tensor x, double value)
    {
        using var scalar = value.ToScalar();
        return x.mul_(scalar);
    }

    /// <summary>In place: x + value.</summary>
    public static Tensor AddInPlace(this Tensor x, double value)
    {
        using var scalar = value.ToScalar();
        return x.add_(scalar, One);
    }

    /// <summary>In place: x + alpha · y.</summary>
    public static Tensor AddInPlace(this Tensor x, Tensor y, double alpha)
    {
        using var scalar = alpha.ToScalar();
        return x.add_(y, scalar);
    }

    /// <summary>In place: x + value · a · b.</summary>
    public static Tensor AddProductInPlace(this Tensor x, Tensor a, Tensor b, double value)
    {
        using var scalar = value.ToScalar();
        return x.addcmul_(a, b, scalar);
    }

    /// <summary>In place: x + value · a / b.</summary>
    public static Tensor AddQuotientInPlace(this Tensor x, Tensor a, Tensor b, double value)
    {
        using var scalar = value.ToScalar();
        return x.addcdiv_(a, b, scalar);
    }
}
