namespace Speculators.Data.Preparation;

/// <summary>
/// <c>numpy.random.default_rng(seed).permutation(n)</c>, bit for bit: the permutation HF
/// <c>datasets</c>' <c>Dataset.shuffle(seed=seed)</c> applies. With it our per-input and final
/// shuffles put rows in the same order as the Python tool.
/// <para>
/// Pieces (numpy 1.x/2.x, <c>bit_generator.pyx</c>, <c>pcg64.h</c>, <c>distributions.c</c>,
/// <c>_generator.pyx</c>): <c>SeedSequence(seed).generate_state(4, uint64)</c> (pool of four
/// 32-bit words, hashmix/mix constants); PCG64 seeded with state = words 0–1, increment = words 2–3
/// (<c>pcg_setseq_128_srandom_r</c>), XSL-RR 128/64 output after each step, 32-bit draws taken as
/// the low then the high half of one 64-bit draw; <c>shuffle</c> = Fisher–Yates from the end with
/// <c>random_interval(i)</c> (mask-and-reject, 32-bit draws while i fits in 32 bits).
/// </para>
/// </summary>
public static class NumpyShuffle
{
    const uint InitA = 0x43b0d7e5, MultA = 0x931e8875, InitB = 0x8b51f9dd, MultB = 0x58f38ded;
    const uint MixMultL = 0xca01f9dd, MixMultR = 0x4973f715;
    const int PoolSize = 4;
    static readonly UInt128 PcgMultiplier = new(0x2360ED051FC65DA4UL, 0x4385DF649FCCF645UL);

    /// <summary><c>np.random.default_rng(seed).permutation(n)</c>.</summary>
    public static long[] Permutation(long seed, long n)
    {
        if (seed < 0) throw new ArgumentOutOfRangeException(nameof(seed), seed, "numpy seeds must be non-negative");
        if (n < 0) throw new ArgumentOutOfRangeException(nameof(n));
        var a = new long[n];
        for (long i = 0; i < n; i++) a[i] = i;
        var g = new Pcg64((ulong)seed);
        for (long i = n - 1; i > 0; i--)
        {
            long j = (long)g.Interval((ulong)i);
            (a[i], a[j]) = (a[j], a[i]);
        }
        return a;
    }

    /// <summary><c>SeedSequence(seed).generate_state(words, uint32)</c>.</summary>
    internal static uint[] SeedSequenceState(ulong seed, int words)
    {
        var entropy = new List<uint>();
        if (seed == 0) entropy.Add(0);
        for (ulong x = seed; x > 0; x >>= 32) entropy.Add((uint)x);

        var pool = new uint[PoolSize];
        uint hashConst = InitA;
        uint HashMix(uint v)
        {
            v ^= hashConst;
            hashConst *= MultA;
            v *= hashConst;
            return v ^ (v >> 16);
        }
        static uint Mix(uint x, uint y)
        {
            uint r = MixMultL * x - MixMultR * y;
            return r ^ (r >> 16);
        }
        for (int i = 0; i < PoolSize; i++) pool[i] = HashMix(i < entropy.Count ? entropy[i] : 0);
        for (int src = 0; src < PoolSize; src++)
            for (int dst = 0; dst < PoolSize; dst++)
                if (src != dst) pool[dst] = Mix(pool[dst], HashMix(pool[src]));
        for (int src = PoolSize; src < entropy.Count; src++)
            for (int dst = 0; dst < PoolSize; dst++)
                pool[dst] = Mix(pool[dst], HashMix(entropy[src]));

        var state = new uint[words];
        uint h = InitB;
        for (int i = 0; i < words; i++)
        {
            uint v = pool[i % PoolSize] ^ h;
            h *= MultB;
            v *= h;
            state[i] = v ^ (v >> 16);
        }
        return state;
    }

    /// <summary>numpy's PCG64 bit generator (with its buffered 32-bit draws).</summary>
    internal sealed class Pcg64
    {
        UInt128 _state;
        readonly UInt128 _inc;
        bool _hasUint32;
        uint _uint32;

        public Pcg64(ulong seed)
        {
            var w = SeedSequenceState(seed, 8);
            ulong U(int k) => w[2 * k] | ((ulong)w[2 * k + 1] << 32);
            var initState = new UInt128(U(0), U(1));
            var initSeq = new UInt128(U(2), U(3));
            _inc = (initSeq << 1) | 1;
            _state = 0;
            Step();
            _state += initState;
            Step();
        }

        void Step() => _state = _state * PcgMultiplier + _inc;

        public ulong Next64()
        {
            Step();
            ulong hi = (ulong)(_state >> 64), lo = (ulong)_state;
            int rot = (int)(_state >> 122);
            return ulong.RotateRight(hi ^ lo, rot);
        }

        public uint Next32()
        {
            if (_hasUint32)
            {
                _hasUint32 = false;
                return _uint32;
            }
            ulong next = Next64();
            _hasUint32 = true;
            _uint32 = (uint)(next >> 32);
            return (uint)next;
        }

        /// <summary><c>random_interval(max)</c>: uniform in [0, max].</summary>
        public ulong Interval(ulong max)
        {
            if (max == 0) return 0;
            ulong mask = max;
            mask |= mask >> 1; mask |= mask >> 2; mask |= mask >> 4;
            mask |= mask >> 8; mask |= mask >> 16; mask |= mask >> 32;
            ulong value;
            if (max <= uint.MaxValue)
                while ((value = Next32() & mask) > max) { }
            else
                while ((value = Next64() & mask) > max) { }
            return value;
        }
    }
}
