//! The connections that have committed output and no send in flight: the
//! next turn submits one send for each, so everything a connection commits
//! within a turn goes out in one send.

/// The list, in the order the connections committed.
#[derive(Debug, Default)]
pub(super) struct SendList {
    keys: Vec<usize>,
}

impl SendList {
    /// Lists connection `key` unless its `listed` flag says it is listed
    /// already, and raises the flag.
    pub(super) fn list(&mut self, key: usize, listed: &mut bool) {
        if !*listed {
            *listed = true;
            self.keys.push(key);
        }
    }

    /// Takes the listed connections out; give the vector back with
    /// [`SendList::recycle`] so the next turn reuses its allocation.
    pub(super) fn take(&mut self) -> Vec<usize> {
        std::mem::take(&mut self.keys)
    }

    /// Gives back the vector [`SendList::take`] returned, emptied, unless
    /// connections were listed in the meantime.
    pub(super) fn recycle(&mut self, mut keys: Vec<usize>) {
        if self.keys.is_empty() {
            keys.clear();
            self.keys = keys;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_is_listed_once_until_it_is_taken() {
        let mut list = SendList::default();
        let (mut a, mut b) = (false, false);
        list.list(7, &mut a);
        list.list(3, &mut b);
        list.list(7, &mut a);
        let keys = list.take();
        assert_eq!(keys, [7, 3]);
        assert!(a && b, "the flags stay up until the sends start");
        list.recycle(keys);
        assert!(list.take().is_empty());
    }

    #[test]
    fn recycling_keeps_what_was_listed_meanwhile() {
        let mut list = SendList::default();
        let mut flag = false;
        list.list(1, &mut flag);
        let keys = list.take();
        let mut late = false;
        list.list(2, &mut late);
        list.recycle(keys);
        assert_eq!(list.take(), [2]);
    }
}
